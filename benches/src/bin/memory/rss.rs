//! The gateway's memory as the kernel counts it: `/proc/PID/status` (VmRSS, VmHWM, RssAnon).

use anyhow::Context;

/// One reading of a process's memory, in KiB as `/proc` gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    /// Resident set now (`VmRSS`).
    pub(crate) rss_kib: u64,
    /// Peak resident set since start (`VmHWM`).
    pub(crate) hwm_kib: u64,
    /// Anonymous resident memory (`RssAnon`): the heap and stacks, without mapped files.
    pub(crate) anon_kib: u64,
}

impl Memory {
    /// Reads `/proc/PID/status`; fails when the process is gone.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in {path}"))?;
            line[name.len()..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("unreadable {line:?} in {path}"))
        };
        Ok(Self { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")?, anon_kib: field("RssAnon:")? })
    }
}

/// KiB as MiB with one decimal.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Bytes per item between two readings (`None` when no items were added).
pub(crate) fn bytes_per_item(before: &Memory, after: &Memory, items: usize) -> Option<f64> {
    (items > 0).then(|| (after.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / items as f64)
}

/// Markdown table rows, one per reading: count, VmRSS, VmHWM, RssAnon (MiB) and the bytes per
/// item added since the previous row (`–` on the first).
pub(crate) fn step_rows(md: &mut String, rows: impl IntoIterator<Item = (usize, Memory)>) {
    let mut prev: Option<(usize, Memory)> = None;
    for (n, m) in rows {
        let step =
            prev.and_then(|(pn, pm)| bytes_per_item(&pm, &m, n - pn)).map_or("–".to_owned(), |b| format!("{b:.0}"));
        md.push_str(&format!(
            "| {} | {} | {} | {} | {step} |\n",
            crate::sessions::thousands(n),
            mib(m.rss_kib),
            mib(m.hwm_kib),
            mib(m.anon_kib)
        ));
        prev = Some((n, m));
    }
}
