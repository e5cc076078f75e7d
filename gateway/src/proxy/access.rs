//! Step 3 of the request path for upstream requests: the route rule decides whether a live
//! sign-in is needed and who may pass (`auth::guard`); a foreign page's request never carries
//! an identity; an upgrade is relayed here.

use pingora::proxy::Session;
use pingora::Result;

use super::local::answer;
use super::{cross_site, rules, Gateway, Live, RequestCtx};
use crate::auth::guard::Access;
use crate::auth::AuthRefusal;
use crate::respond;

impl Gateway {
    /// A request for the upstream: returns `true` when answered here (401, 403, 400, a relayed
    /// WebSocket), `false` to proxy it.
    pub(super) async fn upstream_request(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        if self.guard(live, session, ctx).await? {
            return Ok(true);
        }
        ctx.upgrade = session.is_upgrade_req();
        if ctx.upgrade {
            Self::keep_open(session, ctx);
            if Self::is_websocket(session) {
                self.tunnel(live, session, ctx).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Step 3: the route rule for this path decides whether a live sign-in is needed.
    /// Returns `true` when the request was answered (401, 400).
    async fn guard(&self, live: &Live, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let rule = if live.rules.is_empty() {
            None
        } else {
            match rules::normalize_path(req.uri.path()) {
                Ok(path) => live.rules.find_for(&path, &req.method, &req.headers, req.uri.query()),
                Err(_) => return answer(session, respond::bad_path()).await,
            }
        };
        // A bearer token is no ambient credential: a page of any origin that holds one may use it.
        // (Asked only of foreign requests, so the usual one looks for bearer providers once.)
        if cross_site::is_foreign(&req.headers, &self.channel.own_origin, &live.allowed_origins)
            && live.auth.bearer_providers(&req.headers, rule).is_empty()
        {
            // The SameSite=None cookie rides along with a foreign page's request (a form, a
            // WebSocket); it says nothing of the user's intent, so it never becomes an identity,
            // and no session cookie is set in answer.
            if rule.is_some() {
                return answer(session, AuthRefusal::ForeignPage.into()).await;
            }
            return Ok(false);
        }
        ctx.forward_token = rule.is_some_and(|r| r.forward_access_token || !r.obo_scopes.is_empty());
        match live.auth.authorize(&req.headers, rule).await {
            Access::Allowed(tokens) => {
                ctx.tokens = tokens;
                Ok(false)
            }
            Access::Denied(refusal) => answer(session, refusal.into()).await,
        }
    }
}
