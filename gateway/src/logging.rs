//! The tracing subscriber (text or JSON) with the `log` bridge, so Pingora's records appear too.
//!
//! # Invariants
//! Whatever `RUST_LOG` asks, records from other crates stop at `info`: only the gateway's own
//! targets log at `debug` and `trace`. Pingora's `trace` level prints whole request heads
//! (`Request header: …`, with `Cookie`) and its `debug` level the headers sent upstream (with
//! `Cookie` and `X-Forwarded-Access-Token`); other dependencies' low levels are as free to dump
//! what they carry. The gateway's own lines never hold a cookie, token, code, state or query.
//!
//! Lines are written by a writer thread through a buffer that it flushes whenever it has
//! written everything queued: a busy gateway writes its access lines in a few system calls
//! instead of one per request, an idle one shows each line at once. Nothing is dropped: a
//! request thread waits when 64 Ki lines are queued. [`flush`] writes what is left at exit.

use std::sync::Mutex;

use tracing::{Level, Metadata};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
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
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("gateway-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let base = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer);
    let layer = match format {
        LogFormat::Text => base.with_target(false).boxed(),
        LogFormat::Json => base.json().flatten_event(true).boxed(),
    };
    let installed =
        tracing_subscriber::registry().with(layer.with_filter(filter_fn(is_writable)).with_filter(env)).try_init();
    if installed.is_ok() {
        if let Ok(mut slot) = WRITER.lock() {
            *slot = Some(guard);
        }
    }
}

/// Lines queued for the writer thread before a logging thread waits.
const QUEUED_LINES: usize = 64 * 1024;

/// The writer thread of the installed subscriber; dropping it writes what is queued.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Writes every queued line and stops the writer thread; lines logged afterwards are lost, so
/// this is the last thing before the process exits.
pub fn flush() {
    let guard = WRITER.lock().ok().and_then(|mut slot| slot.take());
    drop(guard);
}
