//! `RedisServer`: Debian's `redis-server` as a child on a free `127.0.0.1` port, killed on drop.
//!
//! ```text
//! RedisServer::start().await               in memory only: --save "" --appendonly no
//! RedisServer::start_persistent().await    append-only file in its own temp dir, fsync always:
//!                                          what was written survives stop() + restart()
//! RedisServer::start_with_password(pw)     --requirepass pw: clients must AUTH (user `default`)
//!     .url()                               redis://127.0.0.1:PORT/0 (redis://default:pw@… with a password)
//!     .store_table("gateway:")             the gateway's [store] table for this server
//!     .stop()                              SIGKILL ("Redis died"); .restart().await: same port, same dir
//!     .keys("gateway:*"), .get_raw(key), .subscribers(channel)     read-only looks, for assertions
//! ```
//! Readiness is a `PING` answered `PONG`, polled with a bounded wait. The server's log is in its
//! temp dir and is quoted when it does not start.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;

use crate::ports;
use crate::retry::eventually;
use crate::tempdir::TempDir;

/// The server binary (Debian package `redis-server`; the test command installs it when missing).
pub const REDIS_SERVER: &str = "redis-server";

/// How long a starting server gets to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest wait for one command from the harness.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How many fresh ports [`RedisServer::start`] tries when another process took the probed one.
const START_ATTEMPTS: u32 = 3;

/// A running `redis-server`, killed (and its directory removed) on drop.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    persistent: bool,
    password: Option<String>,
    child: Option<Child>,
}

/// How a start ended.
enum Started {
    Ready,
    Exited(String),
}

impl RedisServer {
    /// A server that keeps everything in memory (nothing survives [`RedisServer::restart`]).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(false, None).await
    }

    /// A server in memory that refuses every command until the client authenticates with
    /// `password` (`--requirepass`, Redis's `default` ACL user); [`RedisServer::url`] carries it.
    pub async fn start_with_password(password: &str) -> anyhow::Result<Self> {
        Self::start_with(false, Some(password.to_owned())).await
    }

    /// A server with an append-only file (`appendfsync always`) in its own directory, so data
    /// written before [`RedisServer::stop`] is there again after [`RedisServer::restart`].
    pub async fn start_persistent() -> anyhow::Result<Self> {
        Self::start_with(true, None).await
    }

    async fn start_with(persistent: bool, password: Option<String>) -> anyhow::Result<Self> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut server = Self {
                port: ports::free_port()?,
                dir: TempDir::new("redis")?,
                persistent,
                password: password.clone(),
                child: None,
            };
            match server.launch().await? {
                Started::Ready => return Ok(server),
                Started::Exited(why) => last = why,
            }
        }
        bail!("redis-server did not start in {START_ATTEMPTS} attempts; last:\n{last}")
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`, or `redis://default:PASSWORD@127.0.0.1:PORT/0` for a
    /// server started with a password.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://default:{password}@{}/0", self.addr()),
            None => format!("redis://{}/0", self.addr()),
        }
    }

    /// `redis://127.0.0.1:PORT/0` whatever the password: a client that will be refused.
    pub fn url_without_password(&self) -> String {
        format!("redis://{}/0", self.addr())
    }

    /// The gateway's `[store]` table for this server: `kind = "redis"`, this [`RedisServer::url`],
    /// `key_prefix`, and a 300 ms `timeout` so that a dead server is noticed quickly.
    pub fn store_table(&self, key_prefix: &str) -> String {
        format!(
            "[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{key_prefix}\"\ntimeout = \"300ms\"\n",
            self.url()
        )
    }

    /// Kills the server with SIGKILL (no shutdown save) and reaps it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the point is that it is gone.
            let _ = child.kill();
            child.wait().context("cannot reap redis-server")?;
        }
        Ok(())
    }

    /// Starts the server again on the same port with the same directory (and so, for
    /// [`RedisServer::start_persistent`], the same data); kills it first if it still runs.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        match self.launch().await? {
            Started::Ready => Ok(()),
            Started::Exited(why) => bail!("redis-server did not restart on port {}:\n{why}", self.port),
        }
    }

    /// Every key matching `pattern` (`KEYS`; test data sets are small).
    pub async fn keys(&self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut conn = self.connection().await?;
        bounded(redis::cmd("KEYS").arg(pattern).query_async(&mut conn)).await
    }

    /// The bytes stored at string key `key`, `None` when it does not exist (or just expired).
    pub async fn get_raw(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut conn = self.connection().await?;
        bounded(redis::cmd("GET").arg(key).query_async(&mut conn)).await.with_context(|| format!("GET {key}"))
    }

    /// How many clients are subscribed to pub/sub `channel` (`PUBSUB NUMSUB`).
    pub async fn subscribers(&self, channel: &str) -> anyhow::Result<u64> {
        let mut conn = self.connection().await?;
        let (_, count): (String, u64) =
            bounded(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut conn)).await?;
        Ok(count)
    }

    /// Waits (bounded) until at least `count` clients are subscribed to each of `channels`.
    pub async fn wait_subscribers(&self, channels: &[String], count: u64, within: Duration) -> anyhow::Result<()> {
        eventually(&format!("{count} subscribers on each of {channels:?}"), within, || async {
            for channel in channels {
                let n = self.subscribers(channel).await?;
                anyhow::ensure!(n >= count, "{channel} has {n} subscribers");
            }
            Ok(())
        })
        .await
    }

    async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        let client = redis::Client::open(self.url()).context("bad redis url")?;
        bounded(client.get_multiplexed_async_connection()).await.with_context(|| format!("connect to {}", self.addr()))
    }

    /// Spawns the server and waits for `PONG`, or for it to exit (then the reason, with its log).
    async fn launch(&mut self) -> anyhow::Result<Started> {
        let log = self.dir.join("redis.log");
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log);
        if let Some(password) = &self.password {
            cmd.arg("--requirepass").arg(password);
        }
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let stderr = std::fs::File::create(self.dir.join("stderr.log")).context("cannot create redis stderr log")?;
        let child = match cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{REDIS_SERVER} is not installed (not on PATH): the Redis tests need Debian's redis-server; \
                 install it with `apt-get install redis-server` (tests/run does this)"
            ),
            Err(e) => return Err(e).context("cannot start redis-server"),
        };
        // Behind a mutex only so that the retried closure can look at it through `&`.
        let child = std::sync::Mutex::new(child);
        let addr = self.addr();
        let this = &*self;
        let started = eventually(&format!("redis-server on {addr} answers PING"), READY_TIMEOUT, || async {
            let exited = child.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.try_wait()?;
            if let Some(status) = exited {
                return Ok(Started::Exited(format!("redis-server exited with {status}\n{}", this.logs())));
            }
            let mut conn = this.connection().await?;
            let pong: String = bounded(redis::cmd("PING").query_async(&mut conn)).await?;
            anyhow::ensure!(pong == "PONG", "PING answered {pong:?}");
            Ok(Started::Ready)
        })
        .await;
        let mut child = child.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
        match started {
            Ok(Started::Exited(why)) => Ok(Started::Exited(why)),
            Ok(Started::Ready) => {
                self.child = Some(child);
                Ok(Started::Ready)
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e.context(self.logs()))
            }
        }
    }

    /// The server's log and stderr, for failure messages.
    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("--- redis.log ---\n{}--- stderr ---\n{}", read("redis.log"), read("stderr.log"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Best effort: the child must not outlive the test.
        let _ = self.stop();
    }
}

/// Runs one Redis call with [`COMMAND_TIMEOUT`].
async fn bounded<T>(call: impl std::future::Future<Output = redis::RedisResult<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, call).await.context("redis command timed out")?.map_err(Into::into)
}
