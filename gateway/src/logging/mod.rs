//! The tracing subscriber (text or JSON) with the `log` bridge, so Pingora's records appear too.
//!
//! # Invariants
//! Whatever `RUST_LOG` asks, records from other crates stop at `info`: only the gateway's own
//! targets log at `debug` and `trace`. Pingora's `trace` level prints whole request heads
//! (`Request header: …`, with `Cookie`) and its `debug` level the headers sent upstream (with
//! `Cookie` and `X-Forwarded-Access-Token`); other dependencies' low levels are as free to dump
//! what they carry. The gateway's own lines never hold a cookie, token, code, state or query.
//!
//! Every line goes through one writer thread ([`sink`]): a busy gateway writes its lines in a
//! few system calls a second, an idle one shows each line at once, nothing is dropped. The
//! access line of each request is formatted by [`access`], not by tracing's field machinery,
//! but is enabled exactly as a tracing record of target `gateway::proxy` at `info` would be.
//! [`flush`] writes what is left at exit.

pub mod access;
mod sink;

use std::sync::OnceLock;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The most verbose level a record of another crate than the gateway is written at.
pub const DEPENDENCY_MAX_LEVEL: Level = Level::INFO;

/// Whether a record may be written at all, before `RUST_LOG` is asked: the gateway's own
/// targets at any level, every other target at [`DEPENDENCY_MAX_LEVEL`] or above.
pub fn is_writable(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    let own = target == "gateway" || target.starts_with("gateway::");
    own || *meta.level() <= DEPENDENCY_MAX_LEVEL
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`), within
/// [`is_writable`]. Calling it twice is harmless: the second call changes nothing.
pub fn init(format: LogFormat) {
    // `try_init` also installs the `log` bridge (tracing-subscriber's `tracing-log` feature), and
    // fails when either part was already installed: then this call's writer is not used.
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let base = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(sink::Lines);
    let layer = match format {
        LogFormat::Text => base.with_target(false).boxed(),
        LogFormat::Json => base.json().flatten_event(true).boxed(),
    };
    let installed =
        tracing_subscriber::registry().with(layer.with_filter(filter_fn(is_writable)).with_filter(env)).try_init();
    if installed.is_ok() {
        let _ = STYLE.set((format, ansi));
        sink::SINK.start();
    }
}

/// The installed format and whether it is coloured, for lines formatted outside tracing.
static STYLE: OnceLock<(LogFormat, bool)> = OnceLock::new();

/// Writes every queued line and stops the writer thread; lines logged afterwards are written
/// directly, one system call each. The last thing before the process exits.
pub fn flush() {
    sink::SINK.close();
}
