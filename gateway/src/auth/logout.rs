//! `POST /connect/logout`: drops the session's tokens (one provider with `?provider=`),
//! revokes them at the provider when it can, and answers 204.

use std::sync::Arc;

use serde_json::json;

use super::{json_reply, reply, AuthRequest, AuthService, Reply};
use crate::providers::exchange;

impl AuthService {
    /// Logs the session out. The `Origin` must be the gateway's own (no cross-site logout).
    pub async fn logout(self: &Arc<Self>, req: &AuthRequest<'_>) -> Reply {
        let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
        if origin != Some(self.public.origin().as_str()) {
            return json_reply(
                403,
                &json!({"error": "forbidden", "message": "logout must come from the gateway's origin"}),
            );
        }
        let from_cookie = match self.session_of(req.headers).await {
            Ok(s) => s,
            Err(_) => return json_reply(503, &json!({"error": "temporarily_unavailable"})),
        };
        let session = match from_cookie.or_else(|| req.query_param("ticket").and_then(|t| self.channel_session(&t))) {
            Some(s) => s,
            None => return reply(204, "text/plain", ""),
        };
        let provider = match req.query_param("provider") {
            Some(name) => match self.providers.get(&name) {
                Some(p) => Some(p.name.clone()),
                None => return json_reply(400, &json!({"error": "unknown_provider", "provider": name})),
            },
            None => None,
        };
        let all = self.providers.names();
        let removed = match self.store.remove_tokens(&session, provider.as_ref(), &all).await {
            Ok(r) => r,
            Err(_) => return json_reply(503, &json!({"error": "temporarily_unavailable"})),
        };
        tracing::info!(session = %session.log_tag(), providers = removed.len(), "signed out");
        for tokens in removed {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let Some(p) = this.providers.get(tokens.identity.provider.as_str()) else { return };
                if let Ok(resolved) = p.resolve(this.providers.http()).await {
                    exchange::revoke(p, &resolved, this.providers.http(), &tokens.access_token).await;
                }
            });
        }
        reply(204, "text/plain", "")
    }
}
