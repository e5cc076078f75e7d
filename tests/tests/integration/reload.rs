//! SIGHUP reloads the config file: routes, providers and headers change without a restart,
//! sessions and in-flight requests survive, and a file that is invalid or changes a
//! restart-only setting is refused with an error line while the running config keeps serving.

use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::retry::eventually;
use gateway_tests::signin::{dev_config, Browser};
use gateway_tests::{EchoUpstream, TestGateway};

/// Longest wait for a reload to show.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// Status of an anonymous GET.
async fn status(gw: &TestGateway, path: &str) -> anyhow::Result<u16> {
    Ok(gw.client()?.get(gw.url(path)).send().await?.status().as_u16())
}

async fn reload(gw: &TestGateway, text: &str) -> anyhow::Result<()> {
    let process = gw.process()?;
    std::fs::write(process.config_path(), text).context("rewriting the config file")?;
    process.signal("HUP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_file_and_refuses_a_bad_one_while_serving() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let first = dev_config(echo.addr(), &[])?.to_toml();
    let gw = TestGateway::with_toml(first.clone()).spawn_binary().await?;
    let mut browser = Browser::new(gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    ensure!(status(&gw, "/admin/panel").await? == 200, "/admin/ is public before the reload");

    // A slow request in flight across the reload must complete.
    let slow = {
        let client = gw.client()?;
        let url = gw.url("/slow?ms=1500");
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 1. A valid file: /admin/ becomes protected.
    let second = format!("{first}\n[[routes]]\nprefix = \"/admin/\"\nrequire = [\"dev\"]\n");
    reload(&gw, &second).await?;
    eventually("the reloaded route rule applies", RELOAD_WAIT, || async {
        let logs = gw.process()?.logs();
        ensure!(status(&gw, "/admin/panel").await? == 401, "still public; the gateway's log:\n{logs}");
        Ok(())
    })
    .await?;
    ensure!(slow.await?? == 200, "the request in flight across the reload failed");
    // The session signed in before the reload is still signed in.
    let page = browser.get("/admin/panel").await?;
    ensure!(page.status == 200, "the signed-in session lost its sign-in in the reload: {}", page.status);
    ensure!(page.echo()?.header_values("x-forwarded-user") == ["ada"], "no identity after the reload");

    // 2. An invalid file: refused with an error line naming the problem; /admin/ stays protected.
    reload(&gw, &second.replace("require = [\"dev\"]", "require = [\"nobody\"]")).await?;
    let process = gw.process()?;
    eventually("the invalid file is refused in the log", RELOAD_WAIT, || async {
        let logs = process.logs();
        ensure!(logs.contains("config reload refused: the file is invalid"), "no refusal yet");
        ensure!(logs.contains("nobody"), "the refusal does not name the unknown provider:\n{logs}");
        Ok(())
    })
    .await?;
    ensure!(status(&gw, "/admin/panel").await? == 401, "the refused file changed the rules");
    ensure!(browser.get("/admin/panel").await?.status == 200, "the refused file broke the session");

    // 3. A restart-only change (another upstream list): refused, named, nothing changes.
    let moved = second.replace(&echo.addr().to_string(), "127.0.0.1:9");
    reload(&gw, &moved).await?;
    eventually("the restart-only change is refused in the log", RELOAD_WAIT, || async {
        ensure!(process.logs().contains("changed=[upstream]"), "no restart-only refusal yet");
        Ok(())
    })
    .await?;
    ensure!(status(&gw, "/public").await? == 200, "the refused upstream change took effect");
    ensure!(gw.process()?.exit_status().is_none(), "the gateway exited:\n{}", process.logs());
    Ok(())
}
