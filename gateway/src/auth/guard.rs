//! Step 3 of the request path: does this request carry a live sign-in the route accepts?

use std::sync::Arc;

use serde_json::{json, Map};

use super::{json_reply, with_cookie, AuthService, Reply};
use crate::config::{Require, RouteRule};
use crate::store::StoredTokens;

/// The decision for one request.
pub enum Access {
    /// Forward, with these tokens' identity when signed in.
    Allowed(Option<Arc<StoredTokens>>),
    /// Answer this (401 with the sign-in links) instead.
    Denied(Reply),
}

impl AuthService {
    /// Decides access for a request whose path matched `rule` (or no rule: public).
    pub async fn authorize(&self, headers: &http::HeaderMap, rule: Option<&RouteRule>) -> Access {
        let session = self.session_of(headers);
        let Some(rule) = rule else {
            // Public route: pass the identity along when there is one, never require it.
            let Some(session) = session else { return Access::Allowed(None) };
            for p in self.providers.all() {
                if let Ok(Some(t)) = self.store.tokens(&session, &p.name).await {
                    return Access::Allowed(Some(t));
                }
            }
            return Access::Allowed(None);
        };
        let allowed: Vec<&str> = match &rule.require {
            Require::Any => self.providers.all().iter().map(|p| p.name.as_str()).collect(),
            Require::Providers(list) => list.iter().map(|p| p.as_str()).collect(),
        };
        if let Some(session) = session {
            for name in &allowed {
                let Some(p) = self.providers.get(name) else { continue };
                match self.store.tokens(&session, &p.name).await {
                    Ok(Some(t)) => {
                        let t = if rule.forward_access_token { self.fresh_tokens(&session, t).await } else { t };
                        return Access::Allowed(Some(t));
                    }
                    Ok(None) => {}
                    // Fail closed: without the store nobody is known to be signed in.
                    Err(e) => {
                        tracing::error!(error = %e, "token store unavailable");
                        return Access::Denied(json_reply(
                            503,
                            &json!({"error": "temporarily_unavailable", "message": "the token store is unavailable; try again shortly"}),
                        ));
                    }
                }
            }
        }
        Access::Denied(self.authentication_required(headers, &allowed))
    }

    /// 401 `{"error":"authentication_required","providers":{NAME:{"connect_url":...}}}`.
    fn authentication_required(&self, headers: &http::HeaderMap, allowed: &[&str]) -> Reply {
        let Some((session, set_cookie)) = self.ensure_session(headers) else {
            return json_reply(503, &json!({"error": "temporarily_unavailable"}));
        };
        let mut providers = Map::new();
        for name in allowed {
            providers.insert((*name).to_owned(), json!({"connect_url": self.connect_url(name, &session)}));
        }
        let mut r = json_reply(401, &json!({"error": "authentication_required", "providers": providers}));
        r.headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Gateway realm=\"gateway\""));
        with_cookie(r, set_cookie)
    }
}
