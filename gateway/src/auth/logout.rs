//! `POST /connect/logout`: drops the session's tokens (one provider with `?provider=`),
//! revokes them at the provider when it can, and answers 204.

use std::sync::Arc;

use super::{AuthRefusal, AuthRequest, AuthService};
use crate::providers::exchange;

impl AuthService {
    /// Logs the session out. The `Origin` must be the gateway's own (no cross-site logout).
    pub async fn logout(self: &Arc<Self>, req: &AuthRequest<'_>) -> Result<(), AuthRefusal> {
        let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
        if origin != Some(self.public.origin().as_str()) {
            return Err(AuthRefusal::NotSameOrigin("logout"));
        }
        let from_cookie = self.session_of(req.headers).await.map_err(|_| AuthRefusal::StoreUnavailable)?;
        let Some(session) = from_cookie.or_else(|| req.query_param("ticket").and_then(|t| self.channel_session(&t)))
        else {
            return Ok(());
        };
        let provider = match req.query_param("provider") {
            Some(name) => match self.providers.get(&name) {
                Some(p) => Some(p.name.clone()),
                None => return Err(AuthRefusal::UnknownProvider(name)),
            },
            None => None,
        };
        let all = self.providers.names();
        let removed = self
            .store
            .remove_tokens(&session, provider.as_ref(), all)
            .await
            .map_err(|_| AuthRefusal::StoreUnavailable)?;
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
        Ok(())
    }
}
