//! Running a measured process and reading what it cost: `/usr/bin/time -v` for the CPU seconds
//! (user + system) and peak RSS of that process alone, wall time around it, and `/proc` sampling
//! for the idle benchmark. Must not measure anything but the one process it started.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};

/// What one measured process cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcessCost {
    /// Wall time from spawn to exit, seconds.
    pub wall_secs: f64,
    /// User CPU seconds.
    pub user_secs: f64,
    /// System CPU seconds.
    pub sys_secs: f64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
    /// Exit code.
    pub exit_code: i32,
}

/// Runs `program args` pinned to `core` under `/usr/bin/time -v`, with `env` added, stdout and
/// stderr to `log`. Fails when the program fails.
pub fn run_measured(
    core: &str,
    program: &str,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<ProcessCost> {
    let time_out = log.with_extension("time");
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let log_err = log_file.try_clone()?;
    let mut command = Command::new("/usr/bin/time");
    command
        .arg("-v")
        .arg("-o")
        .arg(&time_out)
        .arg("taskset")
        .arg("-c")
        .arg(core)
        .arg(program)
        .args(args)
        .stdout(log_file)
        .stderr(log_err);
    for (k, v) in env {
        command.env(k, v);
    }
    let start = Instant::now();
    let status = command.status().with_context(|| {
        format!("running {program} (is /usr/bin/time installed? apt-get install -y time)")
    })?;
    let wall = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&time_out)
        .with_context(|| format!("reading {}", time_out.display()))?;
    let mut cost = parse_time_v(&text)?;
    cost.wall_secs = wall;
    cost.exit_code = status.code().unwrap_or(-1);
    if !status.success() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: String = tail
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        bail!(
            "{program} failed ({status}); {} ends with:\n{tail}",
            log.display()
        );
    }
    Ok(cost)
}

/// Parses GNU time's `-v` report.
pub fn parse_time_v(text: &str) -> anyhow::Result<ProcessCost> {
    let field = |name: &str| -> anyhow::Result<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .ok_or_else(|| anyhow!("no `{name}` in /usr/bin/time output:\n{text}"))
    };
    Ok(ProcessCost {
        wall_secs: 0.0,
        user_secs: field("User time (seconds):")?.parse()?,
        sys_secs: field("System time (seconds):")?.parse()?,
        max_rss_kib: field("Maximum resident set size (kbytes):")?.parse()?,
        exit_code: 0,
    })
}

/// utime + stime of `pid` in seconds, from `/proc/<pid>/stat` (all threads).
pub fn proc_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`: state is field 3; utime 14, stime 15 (1-based).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields
        .get(11)
        .ok_or_else(|| anyhow!("short stat"))?
        .parse()?;
    let stime: f64 = fields
        .get(12)
        .ok_or_else(|| anyhow!("short stat"))?
        .parse()?;
    // Clock ticks: USER_HZ is 100 on Linux x86_64 (sysconf(_SC_CLK_TCK)).
    Ok((utime + stime) / 100.0)
}

/// `VmHWM` (peak RSS) of `pid`, KiB.
pub fn proc_vmhwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM for {pid}"))
}

/// Direct children of this process (every thread's `children` list).
pub fn own_children() -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Pins every thread of `pid` to the cores `core` (a `taskset -c` list).
pub fn pin(pid: u32, core: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", core, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -a -p -c {core} {pid} failed");
    }
    Ok(())
}

/// The environment of `pid` as `(name, value)` pairs.
pub fn proc_environ(pid: u32) -> anyhow::Result<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let s = String::from_utf8_lossy(kv);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect())
}

/// Starts `ferry run -c config` (the daemon) pinned to `core`, its log (info) into `log`.
pub fn spawn_daemon(
    ferry: &str,
    config: &std::path::Path,
    core: &str,
    log: &std::path::Path,
) -> anyhow::Result<std::process::Child> {
    let log = std::fs::File::create(log)?;
    Ok(std::process::Command::new("taskset")
        .args(["-c", core, ferry, "run", "-c"])
        .arg(config)
        .env("FERRY_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?)
}

/// Stops a daemon started by [`spawn_daemon`] (SIGTERM, as an operator would) and waits for it.
pub async fn stop_daemon(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
