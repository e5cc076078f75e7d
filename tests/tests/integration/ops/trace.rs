//! Trace context: the upstream sees a `traceparent` on every forwarded request, with the
//! client's trace id when the client sent a valid one, a new trace otherwise; the access line
//! names the trace id.

use std::time::Duration;

use gateway_tests::client::read_echo;
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};

const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

/// The fields of a `traceparent` value: version, trace id, parent id, flags.
fn fields(value: &str) -> Vec<String> {
    value.split('-').map(str::to_owned).collect()
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn upstream_sees_the_clients_trace_id_and_a_new_one_for_an_invalid_traceparent() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = TestGateway::with_toml(GatewayConfig::on_free_port(&[echo.addr()])?.to_toml()).start().await?;
    let client = gw.client()?;

    let valid = format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT}-01");
    let seen = read_echo(
        client.get(gw.url("/continued")).header("traceparent", &valid).header("tracestate", "vendor=1").send().await?,
    )
    .await?;
    let sent = seen.header_values("traceparent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let f = fields(&sent[0]);
    assert_eq!(f.len(), 4, "{sent:?}");
    assert_eq!((f[0].as_str(), f[1].as_str(), f[3].as_str()), ("00", CLIENT_TRACE_ID, "01"), "{sent:?}");
    assert!(is_lower_hex(&f[2], 16) && f[2] != CLIENT_PARENT, "the gateway is the new parent: {sent:?}");
    assert_eq!(seen.header("tracestate").as_deref(), Some("vendor=1"), "tracestate travels with its trace");

    let invalid = format!("00-{}-{CLIENT_PARENT}-01", CLIENT_TRACE_ID.to_uppercase());
    let seen = read_echo(
        client.get(gw.url("/replaced")).header("traceparent", &invalid).header("tracestate", "vendor=1").send().await?,
    )
    .await?;
    let sent = seen.header_values("traceparent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let f = fields(&sent[0]);
    assert!(f.len() == 4 && f[0] == "00" && is_lower_hex(&f[1], 32) && is_lower_hex(&f[2], 16), "{sent:?}");
    assert_ne!(f[1].to_lowercase(), CLIENT_TRACE_ID, "an invalid traceparent is replaced, not repaired");
    assert_eq!(seen.header("tracestate"), None, "tracestate without a valid traceparent is dropped");

    let seen = read_echo(client.get(gw.url("/fresh")).send().await?).await?;
    let sent = seen.header_values("traceparent");
    assert!(sent.len() == 1 && fields(&sent[0]).len() == 4, "a request without one gets one: {sent:?}");
    Ok(())
}

#[tokio::test]
async fn the_access_line_names_the_trace_id() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("app").await?;
    let gw = TestGateway::with_toml(GatewayConfig::on_free_port(&[echo.addr()])?.to_toml()).spawn_binary().await?;
    let valid = format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT}-00");
    read_echo(gw.client()?.get(gw.url("/logged")).header("traceparent", &valid).send().await?).await?;

    eventually("the access line of /logged names the trace id", Duration::from_secs(10), || async {
        let logs = gw.process()?.logs();
        let line = logs.lines().find(|l| l.contains("access") && l.contains("/logged"));
        anyhow::ensure!(line.is_some_and(|l| l.contains(CLIENT_TRACE_ID)), "access line: {line:?}");
        Ok(())
    })
    .await
}
