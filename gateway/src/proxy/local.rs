//! The gateway's own routes: each reads what its concern module needs from the Pingora session,
//! calls it, and writes what `respond` makes of the outcome.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use super::{Gateway, Live};
use crate::auth::AuthRequest;
use crate::respond::{self, Answer};

/// Largest request body a gateway route reads (the dev login form).
const MAX_LOCAL_BODY: usize = 16 * 1024;
/// Largest handoff body (`{"code": "..."}` is under 100 bytes).
const MAX_HANDOFF_BODY: usize = 1024;

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

/// What a gateway route needs of its request, owned so the session can be written to afterwards.
struct Owned {
    method: http::Method,
    headers: http::HeaderMap,
    query: Option<String>,
    body: Bytes,
}

impl Owned {
    /// The request's parts; a body only when `max_body` is set and the method is POST. `None`
    /// when the body is over `max_body` (413 written).
    async fn read(session: &mut Session, max_body: Option<usize>) -> pingora::Result<Option<Self>> {
        let req = session.req_header();
        let (method, headers, query) = (req.method.clone(), req.headers.clone(), req.uri.query().map(str::to_owned));
        let body = match max_body {
            Some(max) if method == http::Method::POST => match read_bounded(session, max).await? {
                Some(b) => b,
                None => {
                    respond::write(session, respond::too_large()).await?;
                    return Ok(None);
                }
            },
            _ => Bytes::new(),
        };
        Ok(Some(Self { method, headers, query, body }))
    }

    fn auth(&self) -> AuthRequest<'_> {
        AuthRequest {
            method: &self.method,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: self.body.clone(),
        }
    }
}

/// Writes `answer`; the request was answered here.
pub(super) async fn answer(session: &mut Session, answer: Answer) -> pingora::Result<bool> {
    respond::write(session, answer).await?;
    Ok(true)
}

/// Writes `reply`, then tells `announce`'s channel `auth_success`: after the answer that sets a
/// rotated cookie, so a task pane acting on the event finds its browser holding the new value.
async fn answer_then_announce(
    live: &Live,
    session: &mut Session,
    reply: Answer,
    announce: Option<crate::session::SessionId>,
) -> pingora::Result<bool> {
    let answered = answer(session, reply).await;
    if let Some(signed_in) = announce {
        live.auth.announce_signed_in(&signed_in).await;
    }
    answered
}

impl Gateway {
    /// `GET /_gateway/health`.
    pub(super) async fn health(&self, session: &mut Session) -> pingora::Result<bool> {
        let (healthy, total) = self.upstreams.health_counts();
        answer(session, respond::health(healthy, total)).await
    }

    /// `GET /_gateway/ready`.
    pub(super) async fn ready(&self, session: &mut Session) -> pingora::Result<bool> {
        let missing = self.readiness.missing().await;
        answer(session, respond::readiness(&missing)).await
    }

    /// `GET /_gateway/session`.
    pub(super) async fn session_info(&self, live: &Live, session: &mut Session) -> pingora::Result<bool> {
        let Some(req) = Owned::read(session, None).await? else { return Ok(true) };
        let outcome = live.auth.session_info(&req.auth()).await;
        answer(session, outcome.map_or_else(Answer::from, Answer::from)).await
    }

    /// `GET /connect/{provider}/{ticket}`: 302 to the provider, or the failure page.
    pub(super) async fn connect(
        &self,
        live: &Live,
        session: &mut Session,
        provider: &str,
        ticket: &str,
    ) -> pingora::Result<bool> {
        let Some(req) = Owned::read(session, None).await? else { return Ok(true) };
        let start = std::time::SystemTime::now();
        let outcome = live.auth.connect(provider, ticket, &req.auth()).await;
        let step = outcome.as_ref().map_or_else(|e| e.metric_reason(), |_| "ok");
        live.auth.note_step("signin.connect", provider, step, start);
        let reply = match outcome {
            Ok(url) => Answer::redirect(url.as_str()),
            Err(e) => {
                let opener = crate::auth::flow::Opener::Window;
                respond::flow_failure_page(&live.auth.public_origin(), provider, opener, &e)
            }
        };
        answer(session, reply).await
    }

    /// `GET /connect/{provider}/callback`: the completion page.
    pub(super) async fn callback(&self, live: &Live, session: &mut Session, provider: &str) -> pingora::Result<bool> {
        let Some(req) = Owned::read(session, None).await? else { return Ok(true) };
        let origin = live.auth.public_origin();
        let start = std::time::SystemTime::now();
        let outcome = live.auth.callback(provider, &req.auth()).await;
        let step = outcome.as_ref().map_or_else(|f| f.error.metric_reason(), |_| "ok");
        live.auth.note_step("signin.callback", provider, step, start);
        let (reply, announce) = match outcome {
            Ok(done) => (respond::completion_page(&origin, &done), done.announce),
            Err(f) => (respond::flow_failure_page(&origin, &f.provider, f.opener, &f.error), None),
        };
        answer_then_announce(live, session, reply, announce).await
    }

    /// `POST /connect/logout`.
    pub(super) async fn logout(&self, live: &Live, session: &mut Session) -> pingora::Result<bool> {
        if session.req_header().method != http::Method::POST {
            return answer(session, respond::method_not_allowed("POST")).await;
        }
        let Some(req) = Owned::read(session, None).await? else { return Ok(true) };
        let reply = match live.auth.logout(&req.auth()).await {
            Ok(()) => respond::done(None),
            Err(refusal) => refusal.into(),
        };
        answer(session, reply).await
    }

    /// `POST /_gateway/handoff`.
    pub(super) async fn handoff(&self, live: &Live, session: &mut Session) -> pingora::Result<bool> {
        if session.req_header().method != http::Method::POST {
            return answer(session, respond::method_not_allowed("POST")).await;
        }
        let Some(req) = Owned::read(session, Some(MAX_HANDOFF_BODY)).await? else { return Ok(true) };
        let start = std::time::SystemTime::now();
        let outcome = live.auth.redeem_handoff(&req.auth()).await;
        live.auth.note_step("signin.handoff", "", if outcome.is_ok() { "ok" } else { "refused" }, start);
        let (reply, announce) = match outcome {
            Ok(redeemed) => (respond::done(Some(&redeemed.set_cookie)), Some(redeemed.announce)),
            Err(refusal) => (refusal.into(), None),
        };
        answer_then_announce(live, session, reply, announce).await
    }

    /// The built-in dev provider's pages, when one is configured.
    pub(super) async fn dev_idp(&self, live: &Live, session: &mut Session, rest: &str) -> pingora::Result<bool> {
        let Some(dev) = &live.dev_idp else { return answer(session, respond::not_found()).await };
        let Some(req) = Owned::read(session, Some(MAX_LOCAL_BODY)).await? else { return Ok(true) };
        let reply = dev.handle(&req.method, rest, req.query.as_deref(), &req.body).await;
        answer(session, reply).await
    }
}
