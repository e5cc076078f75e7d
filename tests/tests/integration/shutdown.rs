//! SIGTERM drains: the in-flight request completes, the process exits 0 within its configured
//! grace, and the port is closed afterwards. Runs the built binary.

use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::client::read_echo;
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_zero() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let config = GatewayConfig::on_free_port(&[echo.addr()])?.shutdown(Duration::from_secs(2), Duration::from_secs(2));
    let gw = TestGateway::with_toml(config).spawn_binary().await?;
    let logs = || gw.process().map(|p| p.logs()).unwrap_or_default();

    let slow = tokio::spawn(gw.client()?.get(gw.url("/slow?ms=1500")).send());
    eventually("the slow request reached the upstream", Duration::from_secs(10), || async {
        ensure!(echo.requests() >= 1, "upstream has seen {} requests", echo.requests());
        Ok(())
    })
    .await?;
    gw.sigterm()?;

    let resp = slow.await?.with_context(logs)?;
    let seen = read_echo(resp).await.with_context(logs)?;
    assert_eq!(seen.path, "/slow");
    // grace 2 s + runtime shutdown 2 s, with room for a busy machine.
    let status =
        gw.wait_exit(Duration::from_secs(20)).await.with_context(|| format!("no exit after SIGTERM\n{}", logs()))?;
    assert!(status.success(), "exit status {status}\n{}", logs());
    assert!(tokio::net::TcpStream::connect(gw.addr()).await.is_err(), "the port still accepts after exit");
    Ok(())
}
