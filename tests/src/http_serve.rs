//! The accept loop of the harness's small HTTP/1.1 servers (the test IdP, the Entra stand-in, the
//! Teams fixtures, the OTLP collector).
//!
//! ```text
//! serve(listener, stop, || service_fn(..))   one service per connection, until `stop` turns true;
//!                                             then the listener is dropped and every connection aborted
//! ```

use std::error::Error as StdError;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Serves every connection `listener` accepts with a service from `service` until `stop` turns
/// true. A client that goes away mid-request is not an error worth reporting here.
pub async fn serve<F, S, B>(listener: TcpListener, mut stop: watch::Receiver<bool>, service: F)
where
    F: Fn() -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let connection =
                    http1::Builder::new().timer(TokioTimer::new()).serve_connection(TokioIo::new(stream), service());
                connections.spawn(async move { let _ = connection.await; });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}
