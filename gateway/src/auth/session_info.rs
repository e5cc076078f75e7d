//! `GET /_gateway/session`: the session's sign-in state per provider, never a token.

use super::{AuthRefusal, AuthRequest, AuthService, ProviderState, SessionState};

impl AuthService {
    /// The session's state (`docs/architecture.md#routes`), creating the session (and its
    /// cookie) if absent. A store outage is an outage: saying "signed out" would mislead the pane.
    pub async fn session_info(&self, req: &AuthRequest<'_>) -> Result<SessionState, AuthRefusal> {
        let Ok(Some((session, set_cookie))) = self.ensure_session(req.headers).await else {
            return Err(AuthRefusal::StoreUnavailable);
        };
        let mut providers = Vec::with_capacity(self.providers.all().len());
        for p in self.providers.all() {
            let tokens = self.store.tokens(&session, &p.name).await.map_err(|_| AuthRefusal::StoreUnavailable)?;
            providers.push(ProviderState {
                name: p.name.to_string(),
                display_name: p.display_name.clone(),
                user: tokens.map(|t| t.identity.clone()),
                connect_url: self.connect_url(p.name.as_str(), &session),
            });
        }
        Ok(SessionState { providers, ticket: self.channel_ticket(&session), set_cookie })
    }
}
