//! HTTPS listener: dev certificates from `gateway::tls`, HTTP/1.1 and HTTP/2 (by ALPN), and the
//! upstream told the client's scheme was https.

use gateway_tests::client::{self, read_echo};
use gateway_tests::{ports, EchoUpstream, GatewayConfig, TempDir, TestGateway};
use reqwest::Version;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_http1_and_http2_and_forwards_proto_https() -> anyhow::Result<()> {
    let dir = TempDir::new("tls")?;
    let certs = gateway::tls::write_dev_certs(dir.path())?;
    let echo = EchoUpstream::start("a").await?;
    let port = ports::free_port()?;
    let config = GatewayConfig::minimal(port, &[echo.addr()])
        .tls(&certs.cert, &certs.key)
        .public_url(&format!("https://localhost:{port}"));
    let gw = TestGateway::with_toml(config).trust_ca(&certs.ca_cert).start().await?;
    let url = format!("https://localhost:{port}/over/tls?x=1");
    assert_eq!(gw.url("/over/tls?x=1"), url);
    // Only the dev CA is trusted, and `localhost` is pinned to the gateway's address.
    let trusting = || anyhow::Ok(client::builder_trusting(&certs.ca_cert)?.resolve("localhost", gw.addr()));

    let h1 = trusting()?.http1_only().build()?;
    let resp = h1.get(&url).send().await?;
    assert_eq!(resp.version(), Version::HTTP_11);
    let seen = read_echo(resp).await?;
    assert_eq!(seen.path, "/over/tls");
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.header("x-forwarded-host").as_deref(), Some(format!("localhost:{port}").as_str()));

    let alpn = trusting()?.build()?;
    let resp = alpn.get(&url).send().await?;
    assert_eq!(resp.version(), Version::HTTP_2, "ALPN should pick h2");
    let seen = read_echo(resp).await?;
    assert_eq!(seen.path, "/over/tls");
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));

    // The certificate really is checked: without the dev CA the handshake fails.
    let untrusting = client::builder().resolve("localhost", gw.addr()).build()?;
    assert!(untrusting.get(&url).send().await.is_err(), "a client without the dev CA connected");
    Ok(())
}
