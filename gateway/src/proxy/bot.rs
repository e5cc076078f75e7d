//! The Teams bot endpoint: the auth loop (`teams`) decides whether a request is answered here
//! or forwarded to the bot with the user's identity.

use pingora::proxy::Session;

use super::local::{answer, read_bounded};
use super::{Gateway, Live, RequestCtx};
use crate::respond::{self, Answer};
use crate::teams::BotDecision;

impl Gateway {
    /// Returns `true` when answered here, `false` to forward (with the identity and body the
    /// Teams layer chose).
    pub(super) async fn bot(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<bool> {
        let Some(teams) = &live.teams else { return Ok(false) };
        if session.req_header().method != http::Method::POST {
            return answer(session, respond::method_not_allowed("POST")).await;
        }
        // The body is read here and replayed to the upstream from Pingora's retry buffer.
        session.enable_retry_buffering();
        let Some(body) = read_bounded(session, crate::teams::activity::MAX_ACTIVITY_BYTES).await? else {
            return answer(session, respond::too_large()).await;
        };
        let auth = session.req_header().headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let sso: &dyn crate::teams::TeamsSso = live.auth.as_ref();
        match teams.handle(auth, &body, Some(sso)).await {
            BotDecision::Reply(json) => answer(session, Answer::json(200, &json)).await,
            BotDecision::Invoke { status, json } => answer(session, Answer::json(status, &json)).await,
            BotDecision::Refuse(refusal) => answer(session, respond::bot_refusal(&refusal)).await,
            BotDecision::Forward { tokens, body } => {
                ctx.tokens = tokens;
                ctx.body_override = body.map(bytes::Bytes::from);
                Ok(false)
            }
        }
    }
}
