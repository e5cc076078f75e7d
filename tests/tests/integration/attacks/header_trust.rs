//! Header trust: a client (or a proxy the gateway does not trust) cannot hand the upstream an
//! identity, a URL, a scheme or an address, in any spelling, shape or number of copies, and
//! cannot make the gateway drop the headers it sets itself.
//!
//! Already asserted in `headers.rs`: the six identity headers and `Forwarded`,
//! `X-Forwarded-For/-Proto/-Host`, `X-Real-IP` in six spellings each, one at a time and all at
//! once with repeats (`client_identity_and_forwarding_headers_never_reach_the_upstream`); a
//! trusted proxy's chain kept and extended, identity still stripped; `Host` checks. Header names
//! with spaces or controls: `smuggling::header_names_with_spaces_or_controls_are_refused_with_400`.

use anyhow::Context;
use gateway_tests::signin::Browser;
use gateway_tests::Echo;

use super::{exchange, Target, IDENTITY_HEADERS};

/// Marks a value the client forged.
const FORGED: &str = "forged";

/// Forwarding headers upstream frameworks read (Spring, Symfony, ASP.NET, IIS, Rails, Traefik's
/// forward-auth), none of them among the three the gateway sets.
const MORE_FORWARDING: [&str; 9] = [
    "X-Forwarded-Uri",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-Server",
    "X-Forwarded-Method",
    "X-Original-URL",
    "X-Rewrite-URL",
];

/// The name as written, lower-case, and with `_` for `-`.
fn spellings(name: &str) -> [String; 3] {
    [name.to_owned(), name.to_ascii_lowercase(), name.replace('-', "_")]
}

/// Every header the upstream saw that carries a forged value, or is not the gateway's own value
/// of `X-Forwarded-For/-Proto/-Host` for a direct client.
fn forged_in(seen: &Echo, authority: &str) -> Vec<String> {
    let mut found: Vec<String> = seen
        .headers
        .iter()
        .filter(|(_, values)| values.iter().any(|v| v.contains(FORGED)))
        .map(|(name, values)| format!("{name}: {values:?}"))
        .collect();
    for (name, expected) in
        [("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"), ("x-forwarded-host", authority)]
    {
        if seen.header_values(name) != [expected] {
            found.push(format!("{name} is {:?}, not the gateway's {expected:?}", seen.header_values(name)));
        }
    }
    found
}

async fn direct_client_cannot_forward(target: &Target) -> anyhow::Result<Vec<String>> {
    let authority = target.authority();
    let mut failures = Vec::new();
    let mut everything: Vec<(String, String)> = Vec::new();
    for name in MORE_FORWARDING {
        for spelling in spellings(name) {
            let value = format!("/{FORGED}/{}", name.to_ascii_lowercase());
            let seen = target.raw("GET", "/public", &[(&spelling, &value)]).await?.echo()?;
            failures.extend(forged_in(&seen, &authority).into_iter().map(|f| format!("[{spelling}] {f}")));
            everything.push((spelling.clone(), value.clone()));
            everything.push((spelling, value));
        }
    }
    // Every one of them twice in one request.
    let all: Vec<(&str, &str)> = everything.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let seen = target.raw("GET", "/public", &all).await?.echo()?;
    failures.extend(forged_in(&seen, &authority).into_iter().map(|f| format!("[all, twice] {f}")));
    Ok(failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_forwarding_header_of_a_direct_client_reaches_the_upstream() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;

    let failures = direct_client_cannot_forward(&target).await?;

    assert!(failures.is_empty(), "{} forged values reached the upstream:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_the_trusted_proxies_is_a_direct_client() -> anyhow::Result<()> {
    let target = Target::start(|c| c.trusted_proxies(&["10.0.0.0/8", "::1/128"])).await?;

    let mut failures = direct_client_cannot_forward(&target).await?;
    let seen = target
        .raw(
            "GET",
            "/public",
            &[
                ("X-Forwarded-For", "10.1.2.3, forged"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "forged.example"),
                ("Forwarded", "for=10.1.2.3;host=forged.example;proto=https"),
            ],
        )
        .await?
        .echo()?;
    failures.extend(forged_in(&seen, &target.authority()));

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(seen.header("forwarded"), None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_cannot_pass_underscore_spellings_or_an_identity() -> anyhow::Result<()> {
    let target = Target::start(|c| c.trusted_proxies(&["127.0.0.1/32"])).await?;
    let mut headers = vec![
        ("X-Forwarded-Host", "app.example"),
        ("X_Forwarded_Host", "forged.example"),
        ("X_Forwarded_For", "forged"),
        ("X_Forwarded_Proto", "forged"),
        ("X_Original_URL", "/forged"),
        ("X_Forwarded_Prefix", "/forged"),
    ];
    headers.extend(IDENTITY_HEADERS.iter().map(|h| (*h, FORGED)));

    let seen = target.raw("GET", "/public", &headers).await?.echo()?;

    assert_eq!(seen.header("x-forwarded-host").as_deref(), Some("app.example"));
    let forged: Vec<(&String, &Vec<String>)> =
        seen.headers.iter().filter(|(_, v)| v.iter().any(|v| v.contains(FORGED))).collect();
    assert!(forged.is_empty(), "a trusted proxy passed {forged:?}");
    Ok(())
}

// Guards against RFC 9112 §5.2 obs-fold smuggling: a continuation line must not become a header
// of its own, or extend one, on the way to the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_fold_lines_are_refused_with_400() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let host = target.authority();

    let mut failures = Vec::new();
    for (name, lines) in [
        ("fold starting a header", "X-Note: a\r\n X-Forwarded-User: mallory\r\n"),
        ("fold with a tab", "X-Note: a\r\n\tX-Forwarded-User: mallory\r\n"),
        ("identity value folded", "X-Forwarded-User:\r\n mallory\r\n"),
        ("fold of the Host", "X-Note: a\r\nHost2: b\r\n  evil.example\r\n"),
    ] {
        let bytes = format!("GET /public HTTP/1.1\r\nHost: {host}\r\n{lines}Connection: close\r\n\r\n");
        let before = target.echo.targets().len();
        let answer = exchange(target.gw.addr(), bytes.as_bytes(), std::time::Duration::from_secs(10)).await?;
        let reached = target.targets_since(before);
        if answer.statuses() != [400] || !reached.is_empty() {
            failures.push(format!("{name}: answers {:?}, upstream saw {reached:?}", answer.statuses()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

// Guards against CVE-2024-45410 (Traefik, hop-by-hop header abuse): headers a client names in
// `Connection` are dropped before the gateway adds its own, never after; naming the gateway's
// forwarding headers is refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_header_cannot_remove_what_the_gateway_sets() -> anyhow::Result<()> {
    let target = Target::start(|c| c).await?;
    let mut browser = Browser::new(target.gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    let cookie = browser.cookie_header().context("no cookie")?;
    let identity = "close, X-Forwarded-User, X-Forwarded-Email, X-Forwarded-Name, X-Forwarded-Provider";

    let seen = target.raw("GET", "/api/x", &[("Cookie", &cookie), ("Connection", identity)]).await?.echo()?;

    for (name, expected) in [
        ("x-forwarded-user", "ada"),
        ("x-forwarded-email", "ada@dev.example"),
        ("x-forwarded-name", "Dev User ada"),
        ("x-forwarded-provider", "dev"),
        ("x-forwarded-for", "127.0.0.1"),
    ] {
        assert_eq!(seen.header_values(name), [expected], "{name} after `Connection: {identity}`");
    }
    let before = target.echo.targets().len();
    for named in ["X-Forwarded-For", "close, x-forwarded-host", "X-Forwarded-Proto", "Host"] {
        let answer = target.raw("GET", "/api/x", &[("Cookie", &cookie), ("Connection", named)]).await?;
        assert_eq!(answer.status, 400, "`Connection: {named}`: {}", super::short(&answer.text()));
    }
    assert_eq!(target.targets_since(before), Vec::<String>::new(), "a refused nomination reached the upstream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_identity_headers_and_the_default_names_are_both_stripped() -> anyhow::Result<()> {
    let target =
        Target::start(|c| c.extra("[identity]\nuser_header = \"X-Remote-User\"\nemail_header = \"X-Remote-Email\"\n"))
            .await?;
    let forged: Vec<(&str, &str)> = [
        "X-Remote-User",
        "x-remote-user",
        "X_Remote_User",
        "X-Remote-Email",
        "X_REMOTE_EMAIL",
        "X-Forwarded-User",
        "X_Forwarded_User",
        "X-Forwarded-Email",
    ]
    .into_iter()
    .map(|name| (name, FORGED))
    .collect();

    let anonymous = target.raw("GET", "/public", &forged).await?.echo()?;
    let mut browser = Browser::new(target.gw.endpoint())?;
    browser.sign_in_dev("ada").await?;
    let mut with_cookie = forged.clone();
    let cookie = browser.cookie_header().context("no cookie")?;
    with_cookie.push(("Cookie", &cookie));
    let signed_in = target.raw("GET", "/api/x", &with_cookie).await?.echo()?;

    for seen in [&anonymous, &signed_in] {
        let leaked: Vec<_> = seen.headers.iter().filter(|(_, v)| v.iter().any(|v| v.contains(FORGED))).collect();
        assert!(leaked.is_empty(), "forged identity reached the upstream: {leaked:?}");
    }
    assert_eq!(signed_in.header_values("x-remote-user"), ["ada"]);
    assert_eq!(signed_in.header_values("x-remote-email"), ["ada@dev.example"]);
    assert_eq!(signed_in.header("x-forwarded-user"), None, "the default name was sent besides the configured one");
    Ok(())
}
