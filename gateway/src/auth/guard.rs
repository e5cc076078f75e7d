//! Step 3 of the request path: does this request carry a live sign-in the route accepts, and
//! may that user pass (`allow`)?

use std::sync::Arc;

use super::{AuthRefusal, AuthService, SignInLink};
use crate::config::types::ProviderName;
use crate::config::{AllowRule, Require, RouteRule};
use crate::identity::Identity;
use crate::providers::bearer::{bearer_of, BearerError};
use crate::providers::obo::OboError;
use crate::providers::Provider;
use crate::store::StoredTokens;

/// The bearer token of the request's `Authorization` header, if it has one.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_of)
}

/// The login-funnel step of a refused bearer token.
fn bearer_metric(e: BearerError) -> &'static str {
    match e {
        BearerError::MissingScope => "bearer_missing_scope",
        BearerError::TenantNotAllowed => "bearer_tenant_not_allowed",
        BearerError::Expired => "bearer_expired",
        BearerError::KeysUnavailable => "bearer_keys_unavailable",
        BearerError::WrongAudience | BearerError::WrongIssuer => "bearer_wrong_audience_or_issuer",
        BearerError::Malformed
        | BearerError::AlgorithmRefused
        | BearerError::UnknownKey
        | BearerError::BadSignature => "bearer_invalid",
    }
}

/// The decision for one request.
pub enum Access {
    /// Forward, with these tokens' identity when signed in.
    Allowed(Option<Arc<StoredTokens>>),
    /// Refused: answer this instead (401 with the sign-in links, 403, 503).
    Denied(AuthRefusal),
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

impl AuthService {
    /// The providers whose bearer tokens this request may carry: `Authorization: Bearer` is
    /// present and the route's providers (every provider on a public route) accept bearers.
    pub fn bearer_providers(&self, headers: &http::HeaderMap, rule: Option<&RouteRule>) -> Vec<&Arc<Provider>> {
        if bearer_token(headers).is_none() {
            return Vec::new();
        }
        let accepts = |p: &&Arc<Provider>| p.bearer.is_some();
        match rule.map(|r| &r.require) {
            Some(Require::Providers(list)) => {
                list.iter().filter_map(|n| self.providers.get(n.as_str())).filter(accepts).collect()
            }
            _ => self.providers.all().iter().filter(accepts).collect(),
        }
    }

    /// Access by an `Authorization: Bearer` token of one of `providers`: validated (never a
    /// fall-through to the cookie), then the route's `allow`.
    async fn authorize_bearer(
        &self,
        headers: &http::HeaderMap,
        providers: &[&Arc<Provider>],
        rule: Option<&RouteRule>,
    ) -> Access {
        let Some(token) = bearer_token(headers) else { return Access::Allowed(None) };
        let mut first_error = None;
        for p in providers {
            let Some(verifier) = &p.bearer else { continue };
            match verifier.verify(token).await {
                Ok((t, fresh)) => {
                    if fresh {
                        self.metrics.observe_login(p.name.as_str(), "bearer_accepted");
                    }
                    if rule.and_then(|r| r.allow.as_ref()).is_some_and(|a| !passes(a, &t.identity)) {
                        return Access::Denied(AuthRefusal::Forbidden);
                    }
                    return Access::Allowed(Some(t));
                }
                Err(e) => {
                    self.metrics.observe_login(p.name.as_str(), bearer_metric(e));
                    first_error.get_or_insert((e, verifier.scopes().to_vec()));
                }
            }
        }
        let (error, scopes) = first_error.unwrap_or((BearerError::Malformed, Vec::new()));
        tracing::info!(reason = %error, "bearer token refused");
        Access::Denied(AuthRefusal::Bearer { error, scopes })
    }

    /// Decides access for a request whose path matched `rule` (or no rule: public); on a
    /// route with `obo_scopes`, the user's access token becomes an on-behalf-of token.
    pub async fn authorize(&self, headers: &http::HeaderMap, rule: Option<&RouteRule>) -> Access {
        match (self.decide(headers, rule).await, rule) {
            (Access::Allowed(Some(t)), Some(r)) if !r.obo_scopes.is_empty() => self.with_obo(headers, &t, r).await,
            (access, _) => access,
        }
    }

    /// The on-behalf-of token for `rule`, or the answer that explains why there is none:
    /// 401 `consent_required` (with Entra's claims challenge and the sign-in links) when the
    /// user must act, so the client can fall back to the popup; 502 otherwise.
    async fn with_obo(&self, headers: &http::HeaderMap, tokens: &StoredTokens, rule: &RouteRule) -> Access {
        match self.on_behalf_of(tokens, &rule.obo_scopes).await {
            Ok(t) => Access::Allowed(Some(Arc::new(t))),
            Err(OboError::UserActionRequired { error, claims }) => {
                let name = tokens.identity.provider.as_str();
                let (links, set_cookie) = match self.ensure_session(headers).await {
                    Ok(Some((session, set_cookie))) => (vec![self.sign_in_link(name, &session)], set_cookie),
                    _ => (Vec::new(), None),
                };
                Access::Denied(AuthRefusal::ConsentRequired { entra_error: error, claims, links, set_cookie })
            }
            Err(e) => {
                tracing::warn!(error = %e, "on-behalf-of exchange failed");
                Access::Denied(AuthRefusal::OboFailed(e.to_string()))
            }
        }
    }

    async fn decide(&self, headers: &http::HeaderMap, rule: Option<&RouteRule>) -> Access {
        let bearer = self.bearer_providers(headers, rule);
        if !bearer.is_empty() {
            return self.authorize_bearer(headers, &bearer, rule).await;
        }
        let session = match self.session_of(headers).await {
            Ok(s) => s,
            // Fail closed on a protected route; a public one goes on without an identity.
            Err(e) if rule.is_some() => {
                tracing::error!(error = %e, "token store unavailable");
                return Access::Denied(AuthRefusal::StoreUnavailable);
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
        let allowed: &[ProviderName] = match &rule.require {
            Require::Any => self.providers.names(),
            Require::Providers(list) => list,
        };
        let mut refused = false;
        if let Some(session) = session {
            for name in allowed {
                match self.store.tokens(&session, name).await {
                    Ok(Some(t)) if rule.allow.as_ref().is_some_and(|a| !passes(a, &t.identity)) => refused = true,
                    Ok(Some(t)) => {
                        let t = if rule.forward_access_token { self.fresh_tokens(&session, t).await } else { t };
                        return Access::Allowed(Some(t));
                    }
                    Ok(None) => {}
                    // Fail closed: without the store nobody is known to be signed in.
                    Err(e) => {
                        tracing::error!(error = %e, "token store unavailable");
                        return Access::Denied(AuthRefusal::StoreUnavailable);
                    }
                }
            }
        }
        if refused {
            tracing::info!(route = %rule.prefix, "signed in but not allowed on this route");
            return Access::Denied(AuthRefusal::Forbidden);
        }
        Access::Denied(self.authentication_required(headers, allowed).await)
    }

    /// The sign-in links of `allowed` for the request's session (created if need be).
    async fn authentication_required(&self, headers: &http::HeaderMap, allowed: &[ProviderName]) -> AuthRefusal {
        let Ok(Some((session, set_cookie))) = self.ensure_session(headers).await else {
            return AuthRefusal::StoreUnavailable;
        };
        let links = allowed.iter().map(|name| self.sign_in_link(name.as_str(), &session)).collect();
        AuthRefusal::SignInRequired { links, set_cookie }
    }

    fn sign_in_link(&self, provider: &str, session: &crate::session::SessionId) -> SignInLink {
        SignInLink { provider: provider.to_owned(), connect_url: self.connect_url(provider, session) }
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
