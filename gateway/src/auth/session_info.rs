//! `GET /_gateway/session`: the session's sign-in state per provider, never a token.

use serde_json::{json, Map, Value};

use super::{json_reply, with_cookie, AuthRequest, AuthService, Reply};

impl AuthService {
    /// Answers the session JSON (`docs/architecture.md#routes`), creating the session (and its cookie) if absent.
    pub async fn session_info(&self, req: &AuthRequest<'_>) -> Reply {
        let Ok(Some((session, set_cookie))) = self.ensure_session(req.headers).await else {
            return json_reply(503, &json!({"error": "temporarily_unavailable"}));
        };
        let mut providers = Map::new();
        for p in self.providers.all() {
            let tokens = match self.store.tokens(&session, &p.name).await {
                Ok(t) => t,
                // Saying "signed out" during a store outage would mislead the task pane.
                Err(_) => {
                    let body = json!({"error": "temporarily_unavailable", "message": "the token store is unavailable"});
                    return with_cookie(json_reply(503, &body), set_cookie);
                }
            };
            let user = tokens.as_ref().map(|t| {
                let i = &t.identity;
                json!({"id": i.subject, "name": i.display_name(), "email": i.email,
                       "preferred_username": i.preferred_username})
            });
            providers.insert(
                p.name.to_string(),
                json!({
                    "display_name": p.display_name,
                    "signed_in": tokens.is_some(),
                    "user": user.unwrap_or(Value::Null),
                    "connect_url": self.connect_url(p.name.as_str(), &session),
                }),
            );
        }
        let ticket = self.channel_ticket(&session);
        with_cookie(json_reply(200, &json!({"providers": providers, "ticket": ticket})), set_cookie)
    }
}
