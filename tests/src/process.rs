//! `GatewayProcess`: the built `gateway` binary as a child process, with its output in files.
//!
//! The binary is `target/debug/gateway` of this workspace (or of `CARGO_TARGET_DIR`); `cargo test`
//! does not build another package's binary, so `cargo build -p gateway` must run first.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tokio::time::Instant;

use crate::tempdir::TempDir;

/// Pause between two checks of [`GatewayProcess::wait_exit`].
const EXIT_POLL: Duration = Duration::from_millis(20);

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The built `gateway` binary, or an error saying how to build it.
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_relative() => root.join(dir),
        Some(dir) => dir,
        None => root.join("target"),
    };
    let binary = target.join("debug").join("gateway");
    ensure!(binary.is_file(), "{} is missing: run `cargo build -p gateway` first", binary.display());
    Ok(binary)
}

/// A running `gateway run --config FILE`; killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Mutex<Child>,
    pid: u32,
    dir: TempDir,
}

impl GatewayProcess {
    /// Writes `toml` to a temp file and starts the binary on it with `env` added to the inherited
    /// environment (`RUST_LOG=info` unless `env` sets it); stdout and stderr go to files.
    pub fn spawn(toml: &str, env: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        Self::spawn_with(toml, env, &[])
    }

    /// [`GatewayProcess::spawn`] as `gateway run ARGS --config FILE` (e.g. `--upgrade`).
    pub fn spawn_with(toml: &str, env: &BTreeMap<String, String>, args: &[&str]) -> anyhow::Result<Self> {
        let binary = gateway_binary()?;
        let dir = TempDir::new("gateway")?;
        let config = dir.join("gateway.toml");
        std::fs::write(&config, toml).with_context(|| format!("cannot write {}", config.display()))?;
        let stdout = File::create(dir.join("stdout.log")).context("cannot create stdout.log")?;
        let stderr = File::create(dir.join("stderr.log")).context("cannot create stderr.log")?;
        let mut command = Command::new(&binary);
        command.arg("run").args(args).arg("--config").arg(&config);
        if !env.contains_key("RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let child = command
            .envs(env)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id();
        Ok(Self { child: Mutex::new(child), pid, dir })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGTERM to the child (by its pid, with `kill -TERM`).
    pub fn sigterm(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...) to the child with `kill -NAME`.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .context("cannot run kill")?;
        ensure!(status.success(), "kill -{name} {} failed: {status}", self.pid);
        Ok(())
    }

    /// The config file the child was started with (rewrite it, then SIGHUP, to reload).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.join("gateway.toml")
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner).try_wait().ok().flatten()
    }

    /// Waits at most `timeout` for the child to exit.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let max_polls = timeout.as_millis() / EXIT_POLL.as_millis() + 1;
        for _ in 0..max_polls {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
        self.exit_status()
    }

    /// Peak resident set size (VmHWM of /proc/PID/status), in KiB.
    pub fn vm_hwm_kib(&self) -> anyhow::Result<u64> {
        self.proc_status_kib("VmHWM")
    }

    /// Current resident set size (VmRSS of /proc/PID/status), in KiB.
    pub fn vm_rss_kib(&self) -> anyhow::Result<u64> {
        self.proc_status_kib("VmRSS")
    }

    fn proc_status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let Some(line) = status.lines().find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':'))) else {
            bail!("{path} has no {field} line");
        };
        let kib = line.trim().trim_end_matches("kB").trim();
        kib.parse().with_context(|| format!("{field} in {path} is not a number: {line:?}"))
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// stdout and stderr, labelled, for failure messages.
    pub fn logs(&self) -> String {
        format!("--- gateway stdout ---\n{}--- gateway stderr ---\n{}", self.stdout(), self.stderr())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if matches!(child.try_wait(), Ok(None)) {
            // Best effort: the child is ours and is reaped right after.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
