//! `TestGateway`: the gateway under test, in this process on its own thread or as the built binary.
//!
//! ```text
//! TestGateway::with_toml(GatewayConfig::minimal(port, &[echo.addr()]))
//!     .env("NAME", "value")          secrets for "env:NAME" references (the process env is untouched)
//!     .start().await                 in-process: gateway::app::run on a std::thread, stopped on drop
//!     .spawn_binary().await          target/debug/gateway run --config FILE, killed on drop
//! then  gw.url("/path"), gw.client(), gw.ws_url("/ws")
//! ```
//! Both wait until the listener accepts TCP and `GET /_gateway/health` answers 200 (bounded).
//! In-process, the shutdown signal is a watch channel the harness controls (Pingora's
//! `run_forever` would `process::exit`); dropping the [`TestGateway`] sends `FastShutdown` and
//! joins the thread with a bounded wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::watch;

use crate::client;
use crate::config::{SECRET_ENV, TEST_SECRET};
use crate::process::GatewayProcess;
use crate::retry::eventually;

/// How long a starting gateway gets to accept connections and answer its health route.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long dropping an in-process gateway waits for its thread to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway's own health route (docs/architecture.md#routes).
pub const HEALTH_PATH: &str = "/_gateway/health";

/// How a running gateway is reached: address, public origin, and the CA to trust for https.
#[derive(Debug, Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    origin: String,
    host: String,
    ca_cert: Option<PathBuf>,
}

impl Endpoint {
    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `public_url`'s origin plus `path`, e.g. `http://127.0.0.1:PORT/x`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    /// The WebSocket URL of `path` (`ws://` or `wss://`).
    pub fn ws_url(&self, path: &str) -> String {
        let url = self.url(path);
        match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => url.replacen("http://", "ws://", 1),
        }
    }

    /// The `Host` a browser would send: `public_url`'s authority.
    pub fn authority(&self) -> &str {
        self.origin.split_once("://").map_or(self.origin.as_str(), |(_, a)| a)
    }

    /// Whether the gateway speaks TLS.
    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// [`client::builder`] set to reach `public_url`'s host at [`Endpoint::addr`], trusting the
    /// CA given to [`GatewayBuilder::trust_ca`] (and only it) when there is one.
    pub fn client_builder(&self) -> anyhow::Result<reqwest::ClientBuilder> {
        let builder = match &self.ca_cert {
            Some(ca) => client::builder_trusting(ca)?,
            None => client::builder(),
        };
        Ok(builder.resolve(&self.host, self.addr))
    }

    /// A client from [`Endpoint::client_builder`].
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        self.client_builder()?.build().context("cannot build the gateway client")
    }
}

/// A gateway about to start; made by [`TestGateway::with_toml`].
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    toml: String,
    env: BTreeMap<String, String>,
    ca_cert: Option<PathBuf>,
}

impl GatewayBuilder {
    /// Makes `name` resolve to `value` for `env:` secret references (and, for
    /// [`GatewayBuilder::spawn_binary`], sets it in the child's environment).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Makes [`TestGateway::client`] trust this CA (PEM file) for https.
    pub fn trust_ca(mut self, ca_pem: &Path) -> Self {
        self.ca_cert = Some(ca_pem.to_owned());
        self
    }

    /// Validates the text the way the gateway does, with this builder's env.
    fn load(&self) -> anyhow::Result<gateway::config::Config> {
        let lookup = |name: &str| self.env.get(name).cloned();
        gateway::config::load_str(&self.toml, "test.toml", &lookup)
            .map_err(|e| anyhow!("the test config is invalid:\n{e}\n--- test.toml ---\n{}", self.toml))
    }

    fn endpoint(&self, config: &gateway::config::Config) -> anyhow::Result<Endpoint> {
        let origin = config.server.public_url.origin();
        let url = reqwest::Url::parse(&origin).with_context(|| format!("public_url origin {origin} is not a URL"))?;
        let host = url.host_str().context("public_url has no host")?.to_owned();
        Ok(Endpoint { addr: config.server.listen, origin, host, ca_cert: self.ca_cert.clone() })
    }

    /// Runs the gateway in this process on its own thread and waits until it is ready.
    pub async fn start(self) -> anyhow::Result<TestGateway> {
        let config = self.load()?;
        let endpoint = self.endpoint(&config)?;
        let (stop, stop_rx) = watch::channel(None);
        let failure = Arc::new(Mutex::new(None));
        let thread_failure = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{}", endpoint.addr.port()))
            .spawn(move || {
                let args = RunArgs { shutdown_signal: Box::new(TestSignal(stop_rx)) };
                if let Err(e) = gateway::app::run(config, None, args, false) {
                    *thread_failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("{e}"));
                }
            })
            .context("cannot spawn the gateway thread")?;
        let gateway =
            TestGateway { endpoint, runner: Runner::InProcess(InProcess { stop, thread: Some(thread), failure }) };
        gateway.wait_ready().await?;
        Ok(gateway)
    }

    /// Runs the built `gateway` binary as `gateway run --config FILE` with this builder's env,
    /// output captured to files, and waits until it is ready.
    pub async fn spawn_binary(self) -> anyhow::Result<TestGateway> {
        let config = self.load()?;
        let endpoint = self.endpoint(&config)?;
        let process = GatewayProcess::spawn(&self.toml, &self.env)?;
        let gateway = TestGateway { endpoint, runner: Runner::Binary(process) };
        gateway.wait_ready().await?;
        Ok(gateway)
    }
}

/// What the harness's shutdown signal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Fast,
    Graceful,
}

/// The in-process gateway's shutdown signal: fires when the harness sends a [`Stop`].
struct TestSignal(watch::Receiver<Option<Stop>>);

#[async_trait]
impl ShutdownSignalWatch for TestSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        // A dropped sender (the TestGateway is gone) means stop now.
        let stop = rx.wait_for(Option::is_some).await.map_or(Stop::Fast, |s| s.unwrap_or(Stop::Fast));
        match stop {
            Stop::Fast => ShutdownSignal::FastShutdown,
            Stop::Graceful => ShutdownSignal::GracefulTerminate,
        }
    }
}

struct InProcess {
    stop: watch::Sender<Option<Stop>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

enum Runner {
    InProcess(InProcess),
    Binary(GatewayProcess),
}

/// A running gateway; stopped (in-process) or killed (binary) on drop.
pub struct TestGateway {
    endpoint: Endpoint,
    runner: Runner,
}

impl TestGateway {
    /// Starts building a gateway from complete TOML text (see [`crate::GatewayConfig`]).
    /// `GATEWAY_SECRET` resolves to [`TEST_SECRET`] unless [`GatewayBuilder::env`] says otherwise.
    pub fn with_toml(toml: impl Into<String>) -> GatewayBuilder {
        let env = BTreeMap::from([(SECRET_ENV.to_owned(), TEST_SECRET.to_owned())]);
        GatewayBuilder { toml: toml.into(), env, ca_cert: None }
    }

    /// How to reach the gateway (cheap to clone into spawned tasks).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr
    }

    /// `public_url`'s origin plus `path`.
    pub fn url(&self, path: &str) -> String {
        self.endpoint.url(path)
    }

    /// The WebSocket URL of `path`.
    pub fn ws_url(&self, path: &str) -> String {
        self.endpoint.ws_url(path)
    }

    /// A client that reaches this gateway by its public name (see [`Endpoint::client_builder`]).
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        self.endpoint.client()
    }

    /// The child process, when started by [`GatewayBuilder::spawn_binary`].
    pub fn process(&self) -> anyhow::Result<&GatewayProcess> {
        match &self.runner {
            Runner::Binary(p) => Ok(p),
            Runner::InProcess(_) => bail!("this gateway runs in-process; use spawn_binary() for process checks"),
        }
    }

    /// The child's pid (binary only).
    pub fn pid(&self) -> Option<u32> {
        self.process().ok().map(GatewayProcess::pid)
    }

    /// Asks for a graceful stop: SIGTERM to the binary, `GracefulTerminate` in-process.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        match &self.runner {
            Runner::Binary(p) => p.sigterm(),
            Runner::InProcess(p) => {
                p.stop.send_replace(Some(Stop::Graceful));
                Ok(())
            }
        }
    }

    /// Waits at most `timeout` for the binary to exit; `None` if it has not (or runs in-process).
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        self.process().ok()?.wait_exit(timeout).await
    }

    /// Peak resident memory of the binary (VmHWM), in KiB.
    pub fn vm_hwm_kib(&self) -> anyhow::Result<u64> {
        self.process()?.vm_hwm_kib()
    }

    /// Current resident memory of the binary (VmRSS), in KiB.
    pub fn vm_rss_kib(&self) -> anyhow::Result<u64> {
        self.process()?.vm_rss_kib()
    }

    /// Why the gateway stopped by itself, if it did.
    fn exited_early(&self) -> Option<String> {
        match &self.runner {
            Runner::InProcess(p) => p.thread.as_ref().filter(|t| t.is_finished()).map(|_| {
                let failure = p.failure.lock().unwrap_or_else(PoisonError::into_inner).clone();
                failure.unwrap_or_else(|| "gateway::app::run returned without an error".to_owned())
            }),
            Runner::Binary(p) => p.exit_status().map(|status| format!("the binary exited with {status}\n{}", p.logs())),
        }
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let addr = self.endpoint.addr;
        eventually(&format!("gateway accepts TCP on {addr}"), READY_TIMEOUT, || async {
            if let Some(why) = self.exited_early() {
                return Err(anyhow!("gateway stopped while starting: {why}"));
            }
            tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connect to {addr}"))?;
            Ok(())
        })
        .await?;
        // Readiness only: the certificate is checked by the tests themselves.
        let probe = client::builder()
            .danger_accept_invalid_certs(true)
            .resolve(&self.endpoint.host, addr)
            .build()
            .context("cannot build the readiness client")?;
        let url = self.url(HEALTH_PATH);
        eventually(&format!("GET {url} answers 200"), READY_TIMEOUT, || async {
            if let Some(why) = self.exited_early() {
                return Err(anyhow!("gateway stopped while starting: {why}"));
            }
            let status = probe.get(&url).send().await?.status();
            ensure!(status == reqwest::StatusCode::OK, "status {status}");
            Ok(())
        })
        .await
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let Runner::InProcess(p) = &mut self.runner else { return };
        p.stop.send_replace(Some(Stop::Fast));
        let Some(thread) = p.thread.take() else { return };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            // The thread reports its own failure through `failure`; a panic has been printed.
            let _ = thread.join();
        } else {
            eprintln!("gateway on {} did not stop within {STOP_TIMEOUT:?}; leaving its thread", self.endpoint.addr);
        }
    }
}
