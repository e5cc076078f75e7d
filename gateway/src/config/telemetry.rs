//! `[telemetry]`: its serde schema and the checks of the OTLP/HTTP endpoint spans are sent to
//! (`validate` records a problem under `telemetry.otlp_endpoint`).

use serde::Deserialize;
use url::Url;

/// `[telemetry]`: trace export; off unless `otlp_endpoint` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: Option<String>,
}

/// An `http` or `https` URL with a host, no credentials, query or fragment. Plain `http` is
/// allowed anywhere: spans carry no secret, and collectors usually listen in-cluster on it.
pub(super) fn endpoint(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("\"{text}\" is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "\"{text}\" has scheme \"{}\"; OTLP/HTTP needs http or https, as in \"http://127.0.0.1:4318/v1/traces\"",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err(format!("\"{text}\" names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("\"{text}\" must not carry credentials, a query or a fragment"));
    }
    Ok(url)
}
