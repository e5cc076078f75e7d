//! Answers the gateway's own routes: reads what the concern modules need from the Pingora
//! session, calls them, and writes their reply.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use super::respond;
use super::route::Route;
use super::Gateway;
use crate::auth::AuthRequest;

/// Largest request body a gateway route reads (login form, logout).
pub(super) const MAX_LOCAL_BODY: usize = 16 * 1024;
/// Largest handoff body (`{"code": "..."}` is under 100 bytes).
const MAX_HANDOFF_BODY: usize = 1024;

/// Reads the request body up to [`MAX_LOCAL_BODY`]; `None` when it is larger.
async fn read_body(session: &mut Session) -> pingora::Result<Option<Bytes>> {
    read_bounded(session, MAX_LOCAL_BODY).await
}

/// Reads the whole request body if it is at most `max` bytes; `None` when it is larger.
pub(super) async fn read_bounded(session: &mut Session, max: usize) -> pingora::Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > max {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

impl Gateway {
    /// Answers `route` (any gateway route) and writes the response.
    pub(super) async fn answer_local(
        &self,
        live: &super::Live,
        session: &mut Session,
        route: Route<'_>,
    ) -> pingora::Result<()> {
        let method = session.req_header().method.clone();
        let body = match route {
            Route::DevIdp(_) if method == http::Method::POST => match read_body(session).await? {
                Some(b) => b,
                None => return respond::write(session, respond::too_large()).await,
            },
            Route::Handoff if method == http::Method::POST => match read_bounded(session, MAX_HANDOFF_BODY).await? {
                Some(b) => b,
                None => return respond::write(session, respond::too_large()).await,
            },
            _ => Bytes::new(),
        };
        let headers = session.req_header().headers.clone();
        let query = session.req_header().uri.query().map(str::to_owned);
        let req = AuthRequest { method: &method, query: query.as_deref(), headers: &headers, body };
        let start = std::time::SystemTime::now();
        let reply = match route {
            Route::Health => {
                let (healthy, total) = self.upstreams.health_counts();
                return respond::write(session, respond::health(healthy, total)).await;
            }
            Route::Ready => {
                let missing = self.readiness.missing().await;
                return respond::write(session, respond::readiness(&missing)).await;
            }
            Route::Session => live.auth.session_info(&req).await,
            Route::Connect { provider, ticket } => match live.auth.connect(provider, ticket, &req).await {
                Ok(r) => {
                    live.auth.note_step("signin.connect", provider, "ok", start);
                    r
                }
                Err(e) => {
                    live.auth.note_step("signin.connect", provider, e.metric_reason(), start);
                    respond::flow_error(&e, provider, &live.auth)
                }
            },
            Route::Callback { provider } => match live.auth.callback(provider, &req).await {
                Ok(r) => {
                    live.auth.note_step("signin.callback", provider, "ok", start);
                    r
                }
                Err(f) => {
                    live.auth.note_step("signin.callback", provider, f.error.metric_reason(), start);
                    respond::callback_failure(&f, &live.auth)
                }
            },
            Route::Logout if method == http::Method::POST => live.auth.logout(&req).await,
            Route::Logout => respond::method_not_allowed("POST"),
            Route::Handoff if method == http::Method::POST => {
                let reply = live.auth.redeem_handoff(&req).await;
                let outcome = if reply.status().is_success() { "ok" } else { "refused" };
                live.auth.note_step("signin.handoff", "", outcome, start);
                reply
            }
            Route::Handoff => respond::method_not_allowed("POST"),
            Route::DevIdp(rest) => match &live.dev_idp {
                Some(dev) => dev.handle(&method, rest, req.query, &req.body).await,
                None => respond::not_found(),
            },
            Route::ClientJs => respond::client_js(),
            Route::NotFound | Route::Upstream | Route::Events | Route::SocketIo | Route::Bot => respond::not_found(),
        };
        respond::write_reply(session, reply).await
    }
}
