//! Header hygiene: no client-sent identity or forwarding header reaches the upstream in any
//! spelling; the gateway sets `X-Forwarded-*` itself (extending them only for trusted proxies);
//! a `Host` that is not the gateway's is refused with 421.

use gateway_tests::{Echo, EchoUpstream, GatewayConfig, RawRequest, TestGateway};

/// The identity headers (`docs/architecture.md#identity-headers`, default names); never accepted from a client.
const IDENTITY: [&str; 6] = [
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Name",
    "X-Forwarded-Provider",
    "X-Forwarded-Access-Token",
];

/// Forwarding headers a client could forge; the gateway sets its own.
const FORWARDING: [&str; 5] = ["Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-IP"];

/// Marks a value the client forged (inside values that look real).
const FORGED: &str = "198.51.100.77";

/// A forged value for `name` that looks like the real thing and contains [`FORGED`] or `forged`.
fn forged_value(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "forwarded" => format!("for={FORGED};proto=https;host=forged.example"),
        "x-forwarded-for" | "x-real-ip" => FORGED.to_owned(),
        // No marker fits a proto; the exact `http` check below catches it.
        "x-forwarded-proto" => "https".to_owned(),
        "x-forwarded-host" => "forged.example".to_owned(),
        _ => format!("forged-{}", name.to_ascii_lowercase()),
    }
}

/// The spellings a client might use: as written, lower, upper, mixed, and `_` for `-`.
fn spellings(name: &str) -> Vec<String> {
    let mixed: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| if i % 2 == 0 { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() })
        .collect();
    let mut all =
        vec![name.to_owned(), name.to_ascii_lowercase(), name.to_ascii_uppercase(), mixed, name.replace('-', "_")];
    all.push(name.to_ascii_lowercase().replace('-', "_"));
    all.dedup();
    all
}

/// Everything wrong with what the upstream saw, for a direct (untrusted) client on plain HTTP
/// that used `Host: authority`.
fn problems(seen: &Echo, authority: &str) -> Vec<String> {
    let mut found = Vec::new();
    let tracked: Vec<String> = IDENTITY.iter().chain(&FORWARDING).map(|n| n.to_ascii_lowercase()).collect();
    for (name, values) in &seen.headers {
        let normalised = name.replace('_', "-");
        if values.iter().any(|v| v.contains(FORGED) || v.contains("forged")) {
            found.push(format!("forged value reached the upstream: {name}: {values:?}"));
        }
        if normalised != *name && tracked.contains(&normalised) {
            found.push(format!("underscore spelling reached the upstream: {name}: {values:?}"));
        }
        if IDENTITY.iter().any(|i| i.eq_ignore_ascii_case(&normalised)) {
            found.push(format!("identity header reached the upstream without a sign-in: {name}: {values:?}"));
        }
    }
    for (name, expected) in
        [("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"), ("x-forwarded-host", authority)]
    {
        if seen.header_values(name) != [expected] {
            found.push(format!("{name} is {:?}, expected [{expected:?}]", seen.header_values(name)));
        }
    }
    found
}

async fn gateway_with(config: GatewayConfig) -> anyhow::Result<TestGateway> {
    TestGateway::with_toml(config).start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_identity_and_forwarding_headers_never_reach_the_upstream() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_with(GatewayConfig::on_free_port(&[echo.addr()])?).await?;
    let authority = gw.endpoint().authority().to_owned();

    let mut failures = Vec::new();
    let mut everything = RawRequest::get("/headers/all").header("Host", &authority);
    for name in IDENTITY.iter().chain(&FORWARDING) {
        for spelling in spellings(name) {
            let value = forged_value(name);
            everything = everything.header(&spelling, &value);
            let resp = RawRequest::get("/headers/one")
                .header("Host", &authority)
                .header(&spelling, &value)
                .send(gw.addr())
                .await?;
            match resp.echo() {
                Ok(seen) => {
                    failures.extend(problems(&seen, &authority).into_iter().map(|p| format!("[{spelling}] {p}")))
                }
                Err(e) => failures.push(format!("[{spelling}] {e:#}")),
            }
        }
    }
    // All of them at once, each name several times.
    let seen = everything.send(gw.addr()).await?.echo()?;
    failures.extend(problems(&seen, &authority).into_iter().map(|p| format!("[all at once] {p}")));

    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sets_forwarding_headers_for_a_direct_client() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_with(GatewayConfig::on_free_port(&[echo.addr()])?).await?;

    let seen = gateway_tests::client::read_echo(gw.client()?.get(gw.url("/direct")).send().await?).await?;

    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.header("x-forwarded-host").as_deref(), Some(gw.endpoint().authority()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_forwarding_headers_are_kept_and_extended_but_identity_is_still_stripped() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_with(GatewayConfig::on_free_port(&[echo.addr()])?.trusted_proxies(&["127.0.0.1/32"])).await?;
    let authority = gw.endpoint().authority().to_owned();

    let mut request = RawRequest::get("/behind-a-proxy")
        .header("Host", &authority)
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "app.example");
    for name in IDENTITY {
        request = request.header(name, &forged_value(name)).header(&name.replace('-', "_"), &forged_value(name));
    }
    let seen = request.send(gw.addr()).await?.echo()?;

    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.header("x-forwarded-host").as_deref(), Some("app.example"));
    for (name, values) in &seen.headers {
        let normalised = name.replace('_', "-");
        assert!(
            !IDENTITY.iter().any(|i| i.eq_ignore_ascii_case(&normalised)),
            "identity header from a trusted proxy reached the upstream: {name}: {values:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_misdirected_421() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_with(GatewayConfig::on_free_port(&[echo.addr()])?).await?;

    let resp = RawRequest::get("/x").header("Host", "evil.example").send(gw.addr()).await?;

    assert_eq!(resp.status, 421, "{}", resp.text());
    assert_eq!(echo.requests(), 0, "the misdirected request reached the upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_with_bytes_outside_visible_ascii_is_misdirected_421() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_with(GatewayConfig::on_free_port(&[echo.addr()])?).await?;
    let own = gw.addr().to_string();

    // The gateway's own authority with one byte of obs-text (UTF-8 é) after the host name.
    let (name, port) = own.rsplit_once(':').expect("an address has a port");
    let resp = RawRequest::get("/x").header("Host", &format!("{name}\u{e9}:{port}")).send(gw.addr()).await?;

    assert_eq!(resp.status, 421, "{}", resp.text());
    assert_eq!(echo.requests(), 0, "a request with an unreadable Host reached the upstream");
    let fine = RawRequest::get("/x").header("Host", &own).send(gw.addr()).await?;
    assert_eq!(fine.status, 200, "{}", fine.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_host_is_accepted_and_others_still_refused() -> anyhow::Result<()> {
    let echo = EchoUpstream::start("a").await?;
    let gw = gateway_with(GatewayConfig::on_free_port(&[echo.addr()])?.extra_hosts(&["alias.test"])).await?;

    let alias = RawRequest::get("/via-alias").header("Host", "alias.test").send(gw.addr()).await?;
    let seen = alias.echo()?;
    assert_eq!(seen.header("x-forwarded-host").as_deref(), Some("alias.test"));

    let other = RawRequest::get("/x").header("Host", "evil.example").send(gw.addr()).await?;
    assert_eq!(other.status, 421, "{}", other.text());
    Ok(())
}
