//! End to end: customers' containers shipped to provider storage by the real `ferry` binary,
//! against Azurite and ferry-sim.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_records_and_copy_once() {
    let w = world(2).await;
    let contoso = w.seeder("contoso").await;
    contoso.create_container("exports").await.ok();
    contoso
        .put_block_blob(
            "insights-logs-auditevent",
            "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json",
            log_lines("c", 0, 100),
        )
        .await
        .unwrap();
    let fabrikam = w.seeder("fabrikam").await;
    fabrikam
        .create_append_blob("insights-logs-auditevent", "resourceId=/X/PT1H.json")
        .await
        .unwrap();
    fabrikam
        .append_block(
            "insights-logs-auditevent",
            "resourceId=/X/PT1H.json",
            log_lines("f", 0, 50),
        )
        .await
        .unwrap();
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    eprintln!("{}", output_text(&out));
    let dest = w.destination().await;
    let mut lines = Vec::new();
    for (name, (meta, body)) in &dest {
        assert!(
            name.starts_with("tenant=contoso/source=audit/")
                || name.starts_with("tenant=fabrikam/source=audit/"),
            "{name}"
        );
        assert_eq!(
            meta.get("ferry_tenant").map(String::as_str),
            Some(
                name.split('/')
                    .next()
                    .unwrap()
                    .trim_start_matches("tenant=")
            )
        );
        lines.extend(decode_records(name, body));
    }
    assert_eq!(lines.len(), 150, "{dest:?}");
}
