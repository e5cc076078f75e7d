//! `gateway demo`: the gateway, a sample add-in upstream that knows nothing of OAuth, and the
//! built-in `dev` provider, in one process, from `config/demo.toml`. Needs no accounts or network.

mod upstream;

use std::path::Path;

use anyhow::Context;
use pingora::services::background::background_service;

pub use upstream::SampleAddin;

/// The demo config (also shipped as `config/demo.toml`, for copying).
pub const DEMO_TOML: &str = include_str!("../../../config/demo.toml");

/// Runs the demo until SIGINT/SIGTERM. `http`: plain HTTP on localhost instead of TLS.
/// `config`: another file in demo.toml's shape (the sample add-in listens on its first upstream).
pub fn run(http: bool, config: Option<&Path>) -> anyhow::Result<()> {
    let (mut text, origin) = match config {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (DEMO_TOML.to_owned(), "config/demo.toml".to_owned()),
    };
    if http {
        text = text.replace("public_url = \"https://", "public_url = \"http://");
        text = text.lines().filter(|l| !l.starts_with("tls_")).collect::<Vec<_>>().join("\n");
    } else if config.is_none()
        && (!Path::new("certs/localhost.pem").exists() || !Path::new("certs/localhost-key.pem").exists())
    {
        let p = crate::tls::write_dev_certs(Path::new("certs")).context("writing dev certificates into certs/")?;
        println!("wrote a dev CA to {} (trust it to avoid browser warnings; see certs/README.md)", p.ca_cert.display());
    }
    // A random secret when none is given: demo sessions need not survive a restart.
    let secret = std::env::var("GATEWAY_SECRET").ok().or_else(|| crate::session::random_token(48));
    let env = move |name: &str| if name == "GATEWAY_SECRET" { secret.clone() } else { std::env::var(name).ok() };
    let config = crate::config::load_str(&text, &origin, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let upstream_addr = config.upstream.addrs.first().cloned().context("demo.toml has no upstream")?;
    let mut server = crate::app::build_server(&config, None, false)?;
    server.add_service(background_service("sample add-in", SampleAddin::new(upstream_addr.clone())));
    let url = config.server.public_url.origin();
    println!();
    println!("  gateway demo");
    println!("  open        {url}/");
    println!("  then click  \"Sign in with Dev sign-in\", type any user name in the popup, then \"Call API\"");
    println!("  upstream    http://{upstream_addr} (sample add-in, sees only the identity headers)");
    println!("  stop        Ctrl-C");
    println!();
    server.run(crate::signals::signal_run_args());
    Ok(())
}
