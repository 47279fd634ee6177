//! Helpers of the `ops_*` tests: a `ferry run` daemon as a child process whose output is
//! collected, the status server address read from its log, `/status` and `/metrics` read back,
//! signals sent, and a scan of everything it printed for secrets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `ferry run -c FILE` daemon.
pub struct Daemon {
    child: Child,
    /// Every line it printed (stdout and stderr), in order of arrival.
    pub lines: Arc<Mutex<Vec<String>>>,
    /// `http://127.0.0.1:PORT` of its status server.
    pub base: String,
}

fn collect(r: impl std::io::Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
}

impl Daemon {
    /// Starts ferry and waits (up to 60 s) for its status server address in the log.
    pub fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", "-c", config.to_str().expect("utf-8 path")])
            .env("FERRY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("stdout"), lines.clone());
        collect(child.stderr.take().expect("stderr"), lines.clone());
        let mut d = Daemon {
            child,
            lines,
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = d.find_listen_addr() {
                d.base = format!("http://{addr}");
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "ferry run exited with {status} before its status server listened:\n{}",
                    d.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no 'status server listening on' line within 60 s:\n{}",
                d.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn find_listen_addr(&self) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find_map(|l| {
            let at = l.find("status server listening on ")?;
            let rest = &l[at + "status server listening on ".len()..];
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            (!addr.is_empty()).then_some(addr)
        })
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill(1) is needed to signal ferry: install procps")
            .success();
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    /// SIGTERM, then waits (up to 30 s) for the exit; returns everything printed.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ferry did not stop within 30 s of SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // let the reader threads drain the pipes
        std::thread::sleep(Duration::from_millis(300));
        self.output()
    }

    /// GET a path of the status server: (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.output()));
        let code = r.status().as_u16();
        (code, r.text().await.expect("body"))
    }

    /// `/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status json")
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics").await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Polls `cond` every 250 ms until it holds, or fails after `secs` with `what`.
    pub async fn wait_for<F, Fut>(&self, secs: u64, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond().await {
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for {what}\n--- status:\n{}\n--- output:\n{}",
                self.get("/status").await.1,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample `name{labels}` (labels written as in the exposition, e.g.
/// `tenant="contoso",source="audit"`; empty for none), or None when absent.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let head = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
}

/// A tenant's state in a `/status` document.
pub fn state_of(status: &serde_json::Value, tenant: &str) -> Option<String> {
    status["tenants"][tenant]["state"]
        .as_str()
        .map(str::to_string)
}

/// Objects shipped by a tenant's source, from `/status`.
pub fn objects_of(status: &serde_json::Value, tenant: &str, source: &str) -> u64 {
    status["tenants"][tenant]["sources"][source]["objects_shipped"]
        .as_u64()
        .unwrap_or(0)
}

/// Fails when `output` holds a secret: the app secret, the identity header, or anything shaped
/// like a JWT (`eyJ`).
pub fn assert_no_secrets(output: &str, app_secret: &str, identity_header: &str) {
    assert!(
        !app_secret.is_empty() && !identity_header.is_empty(),
        "the scan needs the secrets to look for"
    );
    for (what, needle) in [
        ("the app secret", app_secret),
        ("the identity header", identity_header),
        ("a JWT (eyJ...)", "eyJ"),
    ] {
        if let Some(line) = output.lines().find(|l| l.contains(needle)) {
            panic!("ferry printed {what}: {line}");
        }
    }
}
