//! Trace export (`[telemetry] otlp_endpoint`): a stand-in collector receives the request's span
//! in the client's trace (its span as parent, the gateway's span as the upstream's parent), the
//! sign-in steps as children of their requests' spans, and nothing secret in any attribute.

use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_tests::client::read_echo;
use gateway_tests::entra::{EntraStandIn, TokenSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use gateway_tests::otlp::{OtlpReceiver, ReceivedSpan};
use gateway_tests::signin::{dev_config, Browser, Decision};
use gateway_tests::{eventually, EchoUpstream, GatewayConfig, TestGateway};

const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";
/// A query value that must never reach a span.
const QUERY_SECRET: &str = "query-secret-7f3a";
/// Longest wait for the export task's next batch (it sends at least once a second).
const EXPORT_WAIT: Duration = Duration::from_secs(15);

/// The value of query parameter `name` in `url`.
fn query_value(url: &str, name: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    let value = parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    value.with_context(|| format!("no {name} in {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_in_the_clients_trace_with_sign_in_steps_and_no_secrets() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let telemetry = format!("[telemetry]\notlp_endpoint = \"{}\"\n", receiver.endpoint());
    let gw = TestGateway::with_toml(dev_config(echo.addr(), &[])?.extra(&telemetry).to_toml()).start().await?;

    // A proxied request continuing the client's trace.
    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT}-01");
    let request =
        gw.client()?.get(gw.url(&format!("/traced?token={QUERY_SECRET}"))).header("traceparent", &traceparent);
    let seen = read_echo(request.send().await?).await?;
    let upstream_parent =
        seen.header_values("traceparent").first().and_then(|v| v.split('-').nth(2).map(str::to_owned));
    let upstream_parent = upstream_parent.context("the upstream got no traceparent")?;

    // A popup sign-in for a task pane's session, redeemed by the pane with its handoff code.
    let mut pane = Browser::new(gw.endpoint())?;
    let connect = pane.session_info().await?.connect_url("dev")?;
    let mut popup = Browser::new(gw.endpoint())?;
    let callback = popup.callback_url(&connect, "ada", Decision::Approve).await?;
    let (provider_code, state) = (query_value(&callback, "code")?, query_value(&callback, "state")?);
    let completion = popup.get(&callback).await?;
    ensure!(completion.status == 200, "the callback answered {}: {}", completion.status, completion.body);
    let handoff = completion.handoff_code()?.context("no handoff code on the completion page")?;
    pane.redeem_from(&completion).await?;
    let cookie = pane.session_cookie().context("the pane has no session cookie")?;

    let steps = ["signin.connect", "signin.callback", "signin.handoff"];
    let spans = eventually("the request span and every sign-in step reach the collector", EXPORT_WAIT, || async {
        let spans = receiver.spans();
        let traced = spans.iter().any(|s| s.trace_id == CLIENT_TRACE_ID);
        let missing: Vec<&str> = steps.iter().copied().filter(|n| !spans.iter().any(|s| s.name == *n)).collect();
        ensure!(traced && missing.is_empty(), "client trace seen: {traced}; steps missing: {missing:?}");
        Ok(spans)
    })
    .await?;

    let request_span: &ReceivedSpan =
        spans.iter().find(|s| s.trace_id == CLIENT_TRACE_ID).context("no span in the client's trace")?;
    assert_eq!(request_span.parent_span_id, CLIENT_PARENT, "the client's span is the parent: {request_span:?}");
    assert_eq!(request_span.span_id, upstream_parent, "the upstream's parent is the gateway's span");
    assert_eq!(request_span.name, "GET upstream");
    assert_eq!(request_span.attribute("http.request.method"), Some("GET"));
    assert_eq!(request_span.attribute("http.response.status_code"), Some("200"));
    assert_eq!(request_span.attribute("http.route"), Some("upstream"));
    assert_eq!(request_span.attribute("gateway.upstream"), Some(echo.addr().to_string().as_str()));

    for name in steps {
        let step = spans.iter().find(|s| s.name == name).context("step span")?;
        let parent = spans.iter().find(|s| s.trace_id == step.trace_id && s.span_id == step.parent_span_id);
        let parent = parent.with_context(|| format!("{name} is not the child of a request span: {step:?}"))?;
        let route = name.trim_start_matches("signin.");
        assert_eq!(parent.attribute("http.route"), Some(route), "{name} belongs to its own request: {parent:?}");
        assert_eq!(step.attribute("gateway.outcome"), Some("ok"), "{step:?}");
    }

    let cookie_value = cookie.split_once('=').map_or(cookie.as_str(), |(_, v)| v).to_owned();
    let secrets = [QUERY_SECRET, &provider_code, &state, &handoff, &cookie_value];
    for span in &spans {
        for (key, value) in
            std::iter::once(("name", &span.name)).chain(span.attributes.iter().map(|(k, v)| (k.as_str(), v)))
        {
            for secret in secrets {
                assert!(!value.contains(secret), "{key} of span {} carries a secret: {value}", span.name);
            }
            assert!(!value.contains('?'), "{key} of span {} carries a query: {value}", span.name);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_behalf_of_exchange_is_a_child_span_of_its_request_and_carries_no_token() -> anyhow::Result<()> {
    const TENANT: &str = "11111111-1111-4111-8111-111111111111";
    let receiver = OtlpReceiver::start().await?;
    let entra = EntraStandIn::start().await?;
    let echo = EchoUpstream::start("app").await?;
    let tables = format!(
        "[providers.entra]\nkind = \"entra\"\ntenant = \"{TENANT}\"\nauthority = \"{}\"\n\
         client_id = \"{DEFAULT_CLIENT_ID}\"\nclient_secret = \"env:ENTRA_SECRET\"\naccept_bearer = true\n\
         [[routes]]\nprefix = \"/graph/\"\nrequire = [\"entra\"]\nobo_scopes = [\"https://graph.microsoft.com/User.Read\"]\n\
         [telemetry]\notlp_endpoint = \"{}\"\n",
        entra.authority(),
        receiver.endpoint()
    );
    let toml = GatewayConfig::on_free_port(&[echo.addr()])?.plain_http_cookies().extra(&tables);
    let gw = TestGateway::with_toml(toml).env("ENTRA_SECRET", DEFAULT_CLIENT_SECRET).start().await?;

    let token = entra.access_token(&TokenSpec::new(TENANT, DEFAULT_CLIENT_ID));
    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_PARENT}-01");
    let request = gw.client()?.get(gw.url("/graph/me")).bearer_auth(&token).header("traceparent", &traceparent);
    let seen = read_echo(request.send().await?).await?;
    let obo_token = seen.header("x-forwarded-access-token").context("no on-behalf-of token forwarded")?;

    let spans = eventually("the exchange's span reaches the collector", EXPORT_WAIT, || async {
        let spans = receiver.spans();
        ensure!(spans.iter().any(|s| s.name == "signin.obo" && s.trace_id == CLIENT_TRACE_ID), "spans: {spans:?}");
        Ok(spans)
    })
    .await?;
    let request_span = spans
        .iter()
        .find(|s| s.trace_id == CLIENT_TRACE_ID && s.parent_span_id == CLIENT_PARENT)
        .context("no request span in the client's trace")?;
    let step = spans.iter().find(|s| s.name == "signin.obo").context("no signin.obo span")?;
    assert_eq!(step.parent_span_id, request_span.span_id, "the exchange is a child of its request: {step:?}");
    assert_eq!((step.attribute("gateway.provider"), step.attribute("gateway.outcome")), (Some("entra"), Some("ok")));
    for span in &spans {
        for (key, value) in &span.attributes {
            assert!(!value.contains(&token) && !value.contains(&obo_token), "{key} of {} carries a token", span.name);
        }
    }
    Ok(())
}
