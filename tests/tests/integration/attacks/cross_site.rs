//! Cross-site requests that carry no `Origin` (an `<img>`, `<script>`, `<link>` or a followed
//! link): the `SameSite=None` cookie rides along, so Fetch Metadata (`Sec-Fetch-Site`) decides,
//! and such a request never carries the user's identity, while the signed-in user's own
//! requests keep theirs (a bystander load, latency printed).
//!
//! Already asserted elsewhere: `channel::a_cross_site_websocket_to_the_upstream_never_carries_the_users_identity`
//! (a foreign `Origin`), and the rule's unit tests in `gateway::proxy::cross_site`.

use anyhow::Context;
use gateway_tests::load::{describe_failures, Latency, Load, Probe, Sample, Tally};
use gateway_tests::signin::Browser;

use super::{Target, IDENTITY_HEADERS};

/// The allowed add-in origin of this suite.
const ADDIN: &str = "https://addin.example.net";

// Guards against cross-site request forgery through subresources and links (OWASP CSRF,
// SameSite=None cookies): `Sec-Fetch-Site: cross-site`, or `same-site` from a page not in
// `channel.allowed_origins`, gets no identity without an `Origin`; a protected route answers
// it 403, a public one (a top-level navigation included) is served without identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_without_origin_carry_no_identity() -> anyhow::Result<()> {
    let target = Target::start_with_channel(&[&format!("allowed_origins = [\"{ADDIN}\"]")], |c| c).await?;
    let mut user = Browser::new(target.gw.endpoint())?;
    user.sign_in_dev("ada").await?;
    let load = Load::start(target.gw.endpoint(), vec![Probe::with_cookie("user", "/api/whoami", &user, Some("ada"))?])?;
    load.run_for(20).await?;

    let image = [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "no-cors"), ("Sec-Fetch-Dest", "image")];
    let foreign_page = [("Sec-Fetch-Site", "same-site"), ("Referer", "https://evil.example.net/page")];
    let navigate = [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "document")];
    for (what, headers) in [("an image", &image[..]), ("a same-site page not allowed", &foreign_page[..])] {
        let page = user.send(http::Method::GET, "/api/report", headers, None).await?;
        assert_eq!(page.status, 403, "{what} on a protected route: {}", page.body);
        let page = user.send(http::Method::GET, "/public/pixel", headers, None).await?;
        assert_eq!(page.status, 200, "{what} on a public route: {}", page.body);
        let echo = page.echo()?;
        for name in IDENTITY_HEADERS {
            assert_eq!(echo.header(name), None, "{what} carried {name}");
        }
    }
    let page = user.send(http::Method::GET, "/public/landing", &navigate, None).await?;
    assert_eq!(page.status, 200, "a cross-site navigation to a public page: {}", page.body);
    assert_eq!(page.echo()?.header("x-forwarded-user"), None, "a cross-site navigation carried the identity");

    // The user's own pages keep the identity: same-origin, and the allowed add-in's pages.
    let referer = format!("{ADDIN}/taskpane.html");
    let allowed = [("Sec-Fetch-Site", "cross-site"), ("Referer", referer.as_str())];
    let own = [("Sec-Fetch-Site", "same-origin")];
    for (what, headers) in [("the allowed add-in's page", &allowed[..]), ("a same-origin fetch", &own[..])] {
        let page = user.send(http::Method::GET, "/api/report", headers, None).await?;
        assert_eq!(page.status, 200, "{what}: {}", page.body);
        assert_eq!(page.echo()?.header("x-forwarded-user").as_deref(), Some("ada"), "{what}");
    }

    let samples = load.finish().await?;
    let tally = Tally::of(&samples);
    println!("cross_site: bystander {tally}; latency {}", Latency::of(&samples));
    assert_eq!(tally.non_2xx(), 0, "{tally}:\n{}", describe_failures(&samples, Sample::is_2xx));
    assert!(!samples.is_empty(), "{}", tally);
    let _ = user.cookie_header().context("the user lost the cookie")?;
    Ok(())
}
