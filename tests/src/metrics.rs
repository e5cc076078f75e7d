//! Reading the gateway's Prometheus metrics from its admin listener (`[server] admin_listen`).
//!
//! ```text
//! let text = metrics::scrape(admin_addr).await?;
//! metrics::value(&text, "gateway_login_funnel_total", &[("provider", "dev"), ("step", "completed")])
//! ```

use std::net::SocketAddr;

use anyhow::{ensure, Context};

/// Path of the metrics on the admin listener.
pub const METRICS_PATH: &str = "/metrics";

/// The Prometheus text of the admin listener at `admin` (200 required).
pub async fn scrape(admin: SocketAddr) -> anyhow::Result<String> {
    let url = format!("http://{admin}{METRICS_PATH}");
    let resp = crate::client::client()?.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    ensure!(status == reqwest::StatusCode::OK, "GET {url} answered {status}: {text}");
    Ok(text)
}

/// The sample of `name` whose labels include all of `labels` (0 when no such sample exists,
/// as for a counter never incremented).
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| v)
        .sum()
}

/// One sample line: metric name, label pairs, value.
type Sample = (String, Vec<(String, String)>, f64);

/// `name{k="v",…} value` → (name, labels, value).
fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let labels = inner
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| pair.split_once("=\""))
                .map(|(k, v)| (k.trim().to_owned(), v.trim_end_matches('"').to_owned()))
                .collect();
            (name, labels)
        }
        None => (series, Vec::new()),
    };
    Some((name.to_owned(), labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_matched_by_a_subset_of_labels() {
        let text = "# HELP x y\ngateway_login_funnel_total{provider=\"dev\",step=\"completed\"} 2\n\
                    gateway_login_funnel_total{provider=\"dev\",step=\"started\"} 3\nplain 7\n";
        assert_eq!(value(text, "gateway_login_funnel_total", &[("step", "completed")]), 2.0);
        assert_eq!(value(text, "gateway_login_funnel_total", &[("provider", "dev")]), 5.0);
        assert_eq!(value(text, "gateway_login_funnel_total", &[("step", "denied")]), 0.0);
        assert_eq!(value(text, "plain", &[]), 7.0);
    }
}
