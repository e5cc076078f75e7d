//! Which signal stops the server, and how (`docs/architecture.md#operations`):
//!
//! | signal | Pingora's stop | what happens |
//! |---|---|---|
//! | SIGTERM, SIGINT | graceful terminate | stop accepting, close status sockets (1001), let requests in flight finish within `server.shutdown_grace`, exit |
//! | SIGQUIT, only with `server.upgrade_socket` | graceful upgrade | hand the listening sockets to the `gateway run --upgrade` waiting on that socket, then stop as above |
//!
//! Without `server.upgrade_socket`, SIGQUIT keeps its default action: a SIGQUIT meant for an
//! upgrade never silently stops a gateway that has nowhere to hand its sockets.

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

/// SIGTERM and SIGINT drain gracefully; with `upgrade`, SIGQUIT hands the listening sockets over
/// to a new process first (Pingora's graceful upgrade).
pub struct TerminateOnSignal {
    upgrade: bool,
}

#[async_trait]
impl ShutdownSignalWatch for TerminateOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        let quit = if self.upgrade { signal(SignalKind::quit()).map(Some) } else { Ok(None) };
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), quit) {
            (Ok(mut term), Ok(mut int), Ok(mut quit)) => {
                let upgrade = async {
                    match quit.as_mut() {
                        Some(q) => q.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, draining"),
                    _ = int.recv() => tracing::info!("SIGINT received, draining"),
                    _ = upgrade => {
                        tracing::info!("SIGQUIT received, handing the listening sockets to the new process, then draining");
                        return ShutdownSignal::GracefulUpgrade;
                    }
                }
                ShutdownSignal::GracefulTerminate
            }
            _ => {
                tracing::error!("cannot install signal handlers; stopping now");
                ShutdownSignal::FastShutdown
            }
        }
    }
}

/// The run arguments of the `gateway` binary: SIGQUIT upgrades only when `upgrade` (the config
/// names `server.upgrade_socket`).
pub fn run_args(upgrade: bool) -> RunArgs {
    RunArgs { shutdown_signal: Box::new(TerminateOnSignal { upgrade }) }
}

/// The run arguments of a gateway that is never upgraded in place (`gateway demo`).
pub fn signal_run_args() -> RunArgs {
    run_args(false)
}
