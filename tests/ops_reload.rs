//! Config reload on SIGHUP against the sandbox: a tenant added and one removed mid-run while an
//! unchanged one is left alone; then a broken file, refused with its errors logged while the
//! running config keeps shipping. On the way, a second `ferry run` on the same state directory
//! is refused. Ends with the summary at exit (totals over a restart, a disabled tenant said so) and
//! the log-secrets scan.

mod common;
mod ops_common;

use common::*;
use ops_common::*;

const BLOB: &str = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_tenants_and_refuses_a_broken_file() {
    let w = world(3).await;
    for (name, n) in [("contoso", 30), ("fabrikam", 20), ("tailspin", 10)] {
        w.seeder(name)
            .await
            .put_block_blob("insights-logs-auditevent", BLOB, log_lines(name, 0, n))
            .await
            .unwrap();
    }
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    let d = Daemon::start(&cfg);
    d.wait_for(60, "contoso and fabrikam shipped", || async {
        let s = d.status().await;
        objects_of(&s, "contoso", "audit") >= 1 && objects_of(&s, "fabrikam", "audit") >= 1
    })
    .await;
    // a second Ferry on the same state directory is refused, naming the owner
    let second = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(["run", "--once", "-c", cfg.to_str().expect("utf-8 path")])
                .output()
                .expect("run a second ferry")
        }
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is in use by another ferry process")
            && err.contains(&format!("(pid {})", d.pid()))
            && err.contains("agent.state_dir"),
        "{err}"
    );

    let before = d.status().await;
    let contoso_since = before["tenants"]["contoso"]["since"].clone();
    assert!(before["tenants"].get("tailspin").is_none(), "{before}");

    // add tailspin, remove fabrikam, keep contoso as it was
    w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("tailspin", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    d.signal("HUP");
    d.wait_for(
        60,
        "tailspin added and shipping, fabrikam removed",
        || async {
            let s = d.status().await;
            objects_of(&s, "tailspin", "audit") >= 1 && s["tenants"].get("fabrikam").is_none()
        },
    )
    .await;
    let after = d.status().await;
    assert_eq!(
        after["tenants"]["contoso"]["since"], contoso_since,
        "contoso was restarted: {after}"
    );
    assert_eq!(
        state_of(&after, "contoso").as_deref(),
        Some("active"),
        "{after}"
    );
    let m = d.metrics().await;
    assert_eq!(
        sample(&m, "ferry_config_reloads_total", r#"result="ok""#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "ferry_records_shipped_total",
            r#"tenant="tailspin",source="audit""#
        ),
        Some(10.0),
        "{m}"
    );
    assert!(
        !m.contains(r#"tenant="fabrikam",state="#),
        "a removed tenant has no state gauge:\n{m}"
    );
    let out = d.output();
    assert!(out.contains("Config reloaded"), "{out}");

    // a broken file: refused with its errors, the running config keeps shipping (the file
    // names the address Ferry listens on, instead of the sandbox's port 0, for `ferry status -c`)
    let listening = d.base.trim_start_matches("http://").to_string();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("status_listen = \"127.0.0.1:0\""), "{text}");
    std::fs::write(
        &cfg,
        text.replace(
            "status_listen = \"127.0.0.1:0\"",
            &format!("status_listen = \"{listening}\""),
        )
        .replace("[destination]", "[destination\nbogus = ")
            + "\n[[tenant]]\nname = \"x\"\ntenant_id = \"not-a-guid\"\n",
    )
    .unwrap();
    d.signal("HUP");
    d.wait_for(30, "the broken reload refused", || async {
        let m = d.metrics().await;
        sample(&m, "ferry_config_reloads_total", r#"result="refused""#) == Some(1.0)
    })
    .await;
    let out = d.output();
    assert!(out.contains("Config reload refused"), "{out}");
    // `ferry status -c` on that file still finds the running Ferry, and says the file is broken
    let status = w.ferry(&["status", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&status);
    assert_eq!(status.status.code(), Some(0), "{text}");
    assert!(
        text.contains("contoso") && text.contains("active"),
        "{text}"
    );
    assert!(
        text.contains("ferry.toml:") && text.contains("all the same"),
        "{text}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("Config reload refused") && l.contains("ferry.toml:")),
        "each error names the file and line:\n{out}"
    );
    let c_before = objects_of(&d.status().await, "contoso", "audit");
    w.seeder("contoso")
        .await
        .put_block_blob(
            "insights-logs-auditevent",
            "resourceId=/AFTER/PT1H.json",
            log_lines("c2", 0, 5),
        )
        .await
        .unwrap();
    d.wait_for(
        30,
        "contoso still shipping under the old config",
        || async {
            let s = d.status().await;
            objects_of(&s, "contoso", "audit") > c_before
                && objects_of(&s, "tailspin", "audit") >= 1
        },
    )
    .await;

    // a fixed file again: contoso's section changed (restarted), tailspin disabled
    let mut changed = SourceSpec::records("audit");
    changed.extra = "  prefix = \"resourceId=\"".into();
    let path = w.config(
        &[
            ("contoso", vec![changed]),
            ("tailspin", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "name = \"tailspin\"\n",
        "name = \"tailspin\"\nenabled = false\n",
    );
    std::fs::write(&path, text).unwrap();
    d.signal("HUP");
    let restarted_at = std::time::Instant::now();
    d.wait_for(30, "the second reload applied", || async {
        let s = d.status().await;
        state_of(&s, "tailspin").as_deref() == Some("disabled")
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        sample(&m, "ferry_config_reloads_total", r#"result="ok""#),
        Some(2.0),
        "{m}"
    );
    let out = d.output();
    assert!(
        out.lines().any(|l| l.contains("Config reloaded")
            && l.contains("restarted")
            && l.contains("contoso")),
        "{out}"
    );
    let c_before = objects_of(&d.status().await, "contoso", "audit");
    w.seeder("contoso")
        .await
        .put_block_blob(
            "insights-logs-auditevent",
            "resourceId=/RESTARTED/PT1H.json",
            log_lines("c3", 0, 5),
        )
        .await
        .unwrap();
    d.wait_for(30, "contoso shipping after its restart", || async {
        objects_of(&d.status().await, "contoso", "audit") > c_before
    })
    .await;

    // fabrikam (removed) and contoso (restarted) stopped well within the sandbox's 5 s grace:
    // nothing was abandoned, so nothing says so once the grace is over
    let grace = std::time::Duration::from_secs(6);
    tokio::time::sleep(grace.saturating_sub(restarted_at.elapsed())).await;
    let out = d.output();
    assert!(!out.contains("Grace period over"), "{out}");

    // the summary at exit counts both runs of the restarted contoso, and says tailspin ended
    // disabled (it was built from the last run of each tenant, with its state at that moment)
    let before_stop = d.status().await;
    let output = d.stop();
    let row = |tenant: &str| {
        output
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{tenant} ")))
            .unwrap_or_else(|| panic!("no summary row for {tenant}:\n{output}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let contoso = row("contoso");
    assert_eq!(
        contoso[2].parse::<u64>().ok(),
        Some(objects_of(&before_stop, "contoso", "audit")),
        "contoso's objects over both runs: {contoso:?}\n{output}"
    );
    assert_eq!(row("tailspin")[1], "disabled", "{output}");
    assert_no_secrets(
        &output,
        &w.provider.app_secret,
        &w.sandbox.state().settings().identity_header,
    );
}
