//! A thousand tenants' tokens kept fresh without a burst: 40-second tokens (so two refresh
//! rounds fit in a short test), callers asking for every tenant's token four times a second,
//! the sim's request counts sampled over time. Asserts: at most one token request per tenant
//! and resource per lifetime, refreshes spread over seconds rather than all at once, no caller
//! waiting on a refresh, no failure.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use ferry::identity::from_config::{http_settings, identity_settings};
use ferry::identity::TokenProvider;

const STORAGE: &str = "https://storage.azure.com";
const TENANTS: usize = 1000;
const LIFETIME_SECS: u64 = 40;
/// Long enough for two refresh rounds after the first fill (each due 24..32 s after the token
/// it replaces, and the first fill itself is spread over seconds), with margin for a busy machine.
const WATCH: Duration = Duration::from_secs(80);

fn tenant_id(i: usize) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        0xa000_0000u32 + i as u32,
        i
    )
}

/// Token requests per tenant for storage, from the sim's counters.
async fn counts(w: &World) -> BTreeMap<String, u64> {
    let v = w.sandbox.admin().requests().await.expect("requests");
    (0..TENANTS)
        .map(|i| {
            let t = tenant_id(i);
            let n = v["token"][&t][STORAGE].as_u64().unwrap_or(0);
            (t, n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tenants_refresh_spread_out_and_once_per_lifetime() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    admin
        .update_settings(Some(LIFETIME_SECS), None)
        .await
        .unwrap();
    for i in 0..TENANTS {
        let t = tenant_id(i);
        admin.add_tenant(&t, None).await.unwrap();
        admin.consent(&t, &w.provider.app_client_id).await.unwrap();
    }
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let loaded = ferry::config::load(&cfg).unwrap_or_else(|e| panic!("config: {e:?}"));
    let http = http_settings(&loaded).unwrap();
    let tokens = TokenProvider::new(identity_settings(&loaded, http.build().unwrap()).unwrap());

    // first fill, as the supervisor does at start
    let fill = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..TENANTS {
        let tokens = tokens.clone();
        set.spawn(async move { tokens.app_token(&tenant_id(i), STORAGE).await.map(drop) });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("first token");
    }
    let fill_took = fill.elapsed();
    let start = Instant::now();
    let base = counts(&w).await;
    assert!(
        base.values().all(|n| *n == 1),
        "one request each for the first fill"
    );

    // callers: every tenant's token, four times a second; sample the sim once a second
    let mut slowest = Duration::ZERO;
    let mut per_second: Vec<u64> = Vec::new();
    let mut last_total: u64 = base.values().sum();
    let mut next_sample = Instant::now() + Duration::from_secs(1);
    while start.elapsed() < WATCH {
        for i in 0..TENANTS {
            let t0 = Instant::now();
            tokens
                .app_token(&tenant_id(i), STORAGE)
                .await
                .unwrap_or_else(|e| panic!("tenant {i}: {e}"));
            slowest = slowest.max(t0.elapsed());
        }
        if Instant::now() >= next_sample {
            let total: u64 = counts(&w).await.values().sum();
            per_second.push(total - last_total);
            last_total = total;
            next_sample += Duration::from_secs(1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let end = counts(&w).await;
    let watched = start.elapsed() + fill_took;
    let most = end.values().copied().max().unwrap_or(0);
    let refreshes: u64 = end.values().sum::<u64>() - TENANTS as u64;
    let busiest = per_second.iter().copied().max().unwrap_or(0);
    eprintln!(
        "first fill {fill_took:?}; watched {watched:?}; refresh requests {refreshes}; most per tenant {most}; busiest second {busiest}; per second {per_second:?}; slowest caller {slowest:?}; totals {:?}",
        tokens.totals()
    );
    // at most one request per tenant and resource per token lifetime (plus the first)
    let lifetimes = watched.as_secs_f64() / LIFETIME_SECS as f64;
    let allowed = 1 + lifetimes.ceil() as u64;
    assert!(
        most <= allowed,
        "a tenant asked {most} times in {lifetimes:.2} lifetimes"
    );
    // both refresh rounds happened, for every tenant
    assert!(
        end.values().all(|n| *n >= 3),
        "a tenant was not refreshed twice: {:?}",
        end.iter().find(|(_, n)| **n < 3)
    );
    // spread: no second carries more than a fifth of a round
    assert!(
        busiest <= (TENANTS / 5) as u64,
        "{busiest} refreshes in one second: a burst"
    );
    // refreshes happen off the callers' path
    assert!(
        slowest < Duration::from_millis(250),
        "a caller waited {slowest:?}"
    );
    assert_eq!(tokens.totals().1, 0, "token failures");
}
