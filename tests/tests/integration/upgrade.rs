//! Zero-downtime upgrade: `gateway run --upgrade` takes the listening socket over from the
//! running gateway when that one gets SIGQUIT (`server.upgrade_socket`). No request of a
//! keep-alive load fails, and every status socket is told to go (1001), reconnects to the new
//! process and hears its sign-in there. Runs the built binary twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use gateway_tests::channel::{next_frame, websocket, Frame, EVENTS_PATH, EVENT_WAIT};
use gateway_tests::client::WebSocket;
use gateway_tests::config::{SECRET_ENV, TEST_SECRET};
use gateway_tests::signin::{dev_config, Browser};
use gateway_tests::{eventually, EchoUpstream, Endpoint, GatewayProcess, TempDir, TestGateway};

/// Browsers (sessions), and status sockets each holds: 50 sockets.
const BROWSERS: usize = 5;
const SOCKETS_PER_BROWSER: usize = 10;
/// Keep-alive connections of the request load, and the most requests each sends.
const LOAD_CONNECTIONS: usize = 4;
const MAX_REQUESTS_PER_CONNECTION: usize = 400;
/// Pause between two requests on one connection, so the load spans the hand-over.
const LOAD_PAUSE: Duration = Duration::from_millis(20);
/// Attempts a status socket gets to reconnect (a client's backoff, bounded).
const RECONNECT_ATTEMPTS: usize = 50;
/// How long after SIGQUIT the old process may take to hand over, drain and exit: Pingora's
/// fixed 5 s hand-over pause, then grace and runtime stop (1 s each here), with room for a busy machine.
const OLD_EXIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigquit_hands_the_listener_to_the_upgrade_without_failing_a_request() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let dir = TempDir::new("upgrade")?;
    let upgrade_socket = dir.join("upgrade.sock");
    let config = dev_config(echo.addr(), &["max_sockets_per_client = 1000"])?
        .server_key(&format!("upgrade_socket = \"{}\"", upgrade_socket.display()))
        .server_key("max_connections_per_client = 1000")
        .shutdown(Duration::from_secs(1), Duration::from_secs(1));
    let toml = config.to_toml();
    let old = TestGateway::with_toml(toml.clone()).spawn_binary().await?;
    let endpoint = old.endpoint().clone();
    let old_logs = || old.process().map(|p| p.logs()).unwrap_or_default();

    let mut browsers = Vec::new();
    let mut sockets: Vec<(usize, WebSocket)> = Vec::new();
    for b in 0..BROWSERS {
        let mut browser = Browser::new(&endpoint)?;
        browser.session_info().await?;
        for _ in 0..SOCKETS_PER_BROWSER {
            let ws = join(&endpoint, &browser).await?.map_err(|code| anyhow!("the first join closed with {code}"))?;
            sockets.push((b, ws));
        }
        browsers.push(browser);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|_| {
            tokio::spawn(keep_alive_load(endpoint.clone(), Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed)))
        })
        .collect();
    eventually("the load is running", EVENT_WAIT, || async {
        ensure!(sent.load(Ordering::Relaxed) >= 20, "{} requests so far", sent.load(Ordering::Relaxed));
        Ok(())
    })
    .await?;

    let env = BTreeMap::from([(SECRET_ENV.to_owned(), TEST_SECRET.to_owned())]);
    let new = GatewayProcess::spawn_with(&toml, &env, &["--upgrade"])?;
    eventually("the new process waits on the upgrade socket", EVENT_WAIT, || async {
        ensure!(new.exit_status().is_none(), "the new process exited\n{}", new.logs());
        ensure!(upgrade_socket.exists(), "no {}", upgrade_socket.display());
        Ok(())
    })
    .await?;
    old.process()?.signal("QUIT")?;

    for (i, (_, ws)) in sockets.iter_mut().enumerate() {
        match next_frame(ws, OLD_EXIT).await.with_context(|| format!("socket {i}\n{}", old_logs()))? {
            Frame::Closed(code) => assert_eq!(code, 1001, "socket {i} close code"),
            Frame::Text(t) => bail!("socket {i} got {t} instead of a close"),
        }
    }
    // Reconnect as a client does; a join that still lands on the stopping process is told to go again.
    let mut rejoined = Vec::new();
    for (b, _) in &sockets {
        rejoined.push((*b, rejoin(&endpoint, &browsers[*b]).await?));
    }
    let status =
        old.wait_exit(OLD_EXIT).await.with_context(|| format!("the old process did not exit\n{}", old_logs()))?;
    assert!(status.success(), "old exit status {status}\n{}", old_logs());
    ensure!(new.exit_status().is_none(), "the new process exited\n{}", new.logs());

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await?;
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {sent} requests failed (after one retry)\n{}", new.logs());
    ensure!(sent >= 100, "only {sent} requests were sent");

    // The old process is gone: these sign-ins happen on the new one and reach the rejoined sockets.
    for browser in &mut browsers {
        browser.sign_in_dev("ada").await.with_context(|| new.logs())?;
    }
    for (i, (_, ws)) in rejoined.iter_mut().enumerate() {
        match next_frame(ws, EVENT_WAIT).await.with_context(|| format!("rejoined socket {i}\n{}", new.logs()))? {
            Frame::Text(t) => ensure!(t.contains("\"auth_success\""), "rejoined socket {i} got {t}"),
            Frame::Closed(code) => bail!("rejoined socket {i} closed with {code}"),
        }
    }
    Ok(())
}

/// Opens a status WebSocket for `browser`'s session: the socket once `init` arrived, or the close
/// code it got instead.
async fn join(endpoint: &Endpoint, browser: &Browser) -> anyhow::Result<Result<WebSocket, u16>> {
    let cookie = browser.cookie_header().context("no session cookie")?;
    let url = endpoint.ws_url(EVENTS_PATH);
    let mut ws =
        websocket(&url, &[("cookie".to_owned(), cookie)]).await?.map_err(|s| anyhow!("upgrade refused: {s}"))?;
    match next_frame(&mut ws, EVENT_WAIT).await? {
        Frame::Text(t) if t.contains("\"init\"") => Ok(Ok(ws)),
        Frame::Text(t) => bail!("the first message was {t}"),
        Frame::Closed(code) => Ok(Err(code)),
    }
}

/// [`join`] until it holds, retrying a 1001 after a pause; bounded.
async fn rejoin(endpoint: &Endpoint, browser: &Browser) -> anyhow::Result<WebSocket> {
    for _ in 0..RECONNECT_ATTEMPTS {
        match join(endpoint, browser).await? {
            Ok(ws) => return Ok(ws),
            Err(1001) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(code) => bail!("the rejoin closed with {code}"),
        }
    }
    bail!("no rejoin held after {RECONNECT_ATTEMPTS} attempts")
}

/// GETs a public route on one keep-alive connection until `stop` (bounded in count). A request
/// that fails is retried once on a new connection, as clients do for idempotent requests whose
/// kept-alive connection the server closed; only a failed retry counts as failed.
async fn keep_alive_load(endpoint: Endpoint, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>, failed: Arc<AtomicUsize>) {
    let fresh = || endpoint.client_builder().and_then(|b| Ok(b.pool_max_idle_per_host(1).build()?));
    let Ok(mut client) = fresh() else {
        failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let url = endpoint.url("/public/ping");
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        if !ok(&client, &url).await {
            match fresh() {
                Ok(new) => client = new,
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            if !ok(&client, &url).await {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(LOAD_PAUSE).await;
    }
}

async fn ok(client: &reqwest::Client, url: &str) -> bool {
    let answer = tokio::time::timeout(EVENT_WAIT, client.get(url).send()).await;
    matches!(answer, Ok(Ok(resp)) if resp.status() == reqwest::StatusCode::OK)
}
