//! Step 3 of the request path: does this request carry a live sign-in the route accepts, and
//! may that user pass (`allow`)?

use std::sync::Arc;

use serde_json::{json, Map};

use super::{json_reply, with_cookie, AuthService, Reply};
use crate::config::{AllowRule, Require, RouteRule};
use crate::store::{Identity, StoredTokens};

/// The decision for one request.
pub enum Access {
    /// Forward, with these tokens' identity when signed in.
    Allowed(Option<Arc<StoredTokens>>),
    /// Answer this (401 with the sign-in links, 403, 503) instead.
    Denied(Reply),
}

/// Whether `identity`'s (provider-vouched) email is one of `emails` (lower-case) or in one of
/// `domains` (lower-case, exact: a subdomain is another domain).
pub(crate) fn email_listed(emails: &[String], domains: &[String], identity: &Identity) -> bool {
    let Some(email) = identity.email.as_deref().map(str::to_ascii_lowercase) else { return false };
    let by_domain = email.rsplit_once('@').is_some_and(|(_, domain)| domains.iter().any(|d| d == domain));
    by_domain || emails.contains(&email)
}

/// Whether `identity` passes `rule`: any listed email, verified email domain, group or role.
pub fn passes(rule: &AllowRule, identity: &Identity) -> bool {
    let by_group = identity.groups.iter().any(|g| rule.groups.contains(g));
    let by_role = identity.roles.iter().any(|r| rule.roles.contains(r));
    email_listed(&rule.emails, &rule.domains, identity) || by_group || by_role
}

fn unavailable() -> Access {
    Access::Denied(json_reply(
        503,
        &json!({"error": "temporarily_unavailable", "message": "the token store is unavailable; try again shortly"}),
    ))
}

impl AuthService {
    /// Decides access for a request whose path matched `rule` (or no rule: public).
    pub async fn authorize(&self, headers: &http::HeaderMap, rule: Option<&RouteRule>) -> Access {
        let session = match self.session_of(headers).await {
            Ok(s) => s,
            // Fail closed on a protected route; a public one goes on without an identity.
            Err(e) if rule.is_some() => {
                tracing::error!(error = %e, "token store unavailable");
                return unavailable();
            }
            Err(_) => None,
        };
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
        let mut refused = false;
        if let Some(session) = session {
            for name in &allowed {
                let Some(p) = self.providers.get(name) else { continue };
                match self.store.tokens(&session, &p.name).await {
                    Ok(Some(t)) if rule.allow.as_ref().is_some_and(|a| !passes(a, &t.identity)) => refused = true,
                    Ok(Some(t)) => {
                        let t = if rule.forward_access_token { self.fresh_tokens(&session, t).await } else { t };
                        return Access::Allowed(Some(t));
                    }
                    Ok(None) => {}
                    // Fail closed: without the store nobody is known to be signed in.
                    Err(e) => {
                        tracing::error!(error = %e, "token store unavailable");
                        return unavailable();
                    }
                }
            }
        }
        if refused {
            tracing::info!(route = %rule.prefix, "signed in but not allowed on this route");
            return Access::Denied(json_reply(
                403,
                &json!({"error": "forbidden", "message": "your account may not use this resource"}),
            ));
        }
        Access::Denied(self.authentication_required(headers, &allowed).await)
    }

    /// 401 `{"error":"authentication_required","providers":{NAME:{"connect_url":...}}}`.
    async fn authentication_required(&self, headers: &http::HeaderMap, allowed: &[&str]) -> Reply {
        let Ok(Some((session, set_cookie))) = self.ensure_session(headers).await else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::ProviderName;

    fn user(email: Option<&str>, groups: &[&str], roles: &[&str]) -> Identity {
        let mut i = Identity::new(ProviderName::parse("p").unwrap(), "sub".into());
        i.email = email.map(str::to_owned);
        i.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        i.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        i
    }

    #[test]
    fn any_listed_email_domain_group_or_role_passes_and_nothing_else_does() {
        let rule = AllowRule {
            emails: vec!["boss@other.org".into()],
            domains: vec!["contoso.com".into()],
            groups: vec!["g-admins".into()],
            roles: vec!["Admin".into()],
        };
        assert!(passes(&rule, &user(Some("Ada@Contoso.com"), &[], &[])));
        assert!(passes(&rule, &user(Some("boss@other.org"), &[], &[])));
        assert!(passes(&rule, &user(None, &["g-admins"], &[])));
        assert!(passes(&rule, &user(None, &[], &["Admin"])));
        assert!(!passes(&rule, &user(Some("ada@contoso.com.evil.io"), &[], &[])));
        assert!(!passes(&rule, &user(Some("ada@sub.contoso.com"), &[], &[])));
        assert!(!passes(&rule, &user(Some("x@other.org"), &["admin"], &["admin"])));
        assert!(!passes(&rule, &user(None, &["Admin"], &["g-admins"])), "a group is not a role");
    }
}
