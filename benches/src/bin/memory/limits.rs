//! The gateway's admission counters during a phase: `gateway_limit_refusals_total` by limit
//! (connections, deadlines, status-channel entries), so a report shows whether a limit refused
//! anyone the load did not mean to abuse.

use std::collections::BTreeMap;

use crate::client::Gateway;

/// `gateway_limit_refusals_total` by its `limit` label.
pub(crate) async fn refusals(gateway: &Gateway, admin: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = gateway.get_text(&format!("{}/metrics", admin.trim_end_matches('/'))).await?;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(gateway::metrics::LIMIT_REFUSALS_TOTAL)) {
        let limit = line.split("limit=\"").nth(1).and_then(|rest| rest.split('"').next());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(limit), Some(value)) = (limit, value) {
            out.insert(limit.to_owned(), value as u64);
        }
    }
    Ok(out)
}

/// A markdown section: what each limit refused between `before` and `after`.
pub(crate) fn section(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let mut md = String::from(
        "### Limit refusals (`gateway_limit_refusals_total`)\n\n| limit | refused or cut during the phase |\n|---|---:|\n",
    );
    for (limit, n) in after {
        let was = before.get(limit).copied().unwrap_or(0);
        md.push_str(&format!("| `{limit}` | {} |\n", n.saturating_sub(was)));
    }
    md.push('\n');
    md
}
