//! Status-channel requests (WebSocket, SSE, socket.io): the `Origin` is checked, the session
//! comes from the signed cookie or `?ticket=` (`auth`), and the request goes to the channel
//! server: a WebSocket upgrade is served here (`proxy::upgrade`), SSE and long-polling are
//! proxied to the channel server's Unix socket with the verified session in a header.

use std::sync::Arc;

use pingora::proxy::Session;

use super::local::answer;
use super::{upgrade, Gateway, Live, RequestCtx};
use crate::auth::AuthRefusal;
use crate::channel;

impl Gateway {
    /// Returns `true` when the request was answered here (403, or an upgraded socket).
    pub(super) async fn status_channel(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let req = session.req_header();
        let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
        if !channel::origin_allowed(origin, &self.channel.own_origin, &live.allowed_origins) {
            self.metrics.refuse_join("bad_origin");
            return answer(session, AuthRefusal::ForeignPage.into()).await;
        }
        let sid = live.auth.channel_member(&req.headers, req.uri.query()).await;
        // Channel connections idle for long by design; the channel server pings and times out.
        session.set_read_timeout(None);
        if let Some(client) = ctx.client {
            session.req_header_mut().insert_header(channel::CLIENT_HEADER, client.to_string())?;
        }
        if session.is_upgrade_req() {
            Self::keep_open(session, ctx);
            ctx.answered = Some(upgrade::serve(session, Arc::clone(&self.channel.server), sid, ctx.client).await?);
            return Ok(true);
        }
        if let Some(sid) = sid {
            session.req_header_mut().insert_header(channel::SESSION_HEADER, sid.storage_key())?;
        }
        ctx.channel = true;
        Ok(false)
    }
}
