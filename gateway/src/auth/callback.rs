//! `GET /connect/{provider}/callback`: finishes a sign-in (state, code exchange, ID token,
//! store, `auth_success`) and answers the completion page.

use std::time::SystemTime;

use secrecy::ExposeSecret;

use super::error::FlowError;
use super::flow::{FlowRecord, Opener};
use super::{AuthRequest, AuthService, Completed, Delivery};
use crate::channel::StatusEvent;
use crate::config::{PopupBinding, SignInRules};
use crate::identity::Identity;
use crate::providers::{exchange, id_token, userinfo, UserSource};
use crate::session::SessionId;
use crate::store::StoredTokens;

/// A failed callback, with what the completion page needs.
#[derive(Debug)]
pub struct CallbackFailure {
    /// Why.
    pub error: FlowError,
    /// The provider in the path.
    pub provider: String,
    /// Who opened the popup (window when unknown).
    pub opener: Opener,
}

impl AuthService {
    /// Handles the provider's redirect back to the gateway.
    pub async fn callback(&self, provider: &str, req: &AuthRequest<'_>) -> Result<Completed, CallbackFailure> {
        let fail = |error: FlowError, opener: Opener| CallbackFailure { error, provider: provider.to_owned(), opener };
        let label = self.providers.get(provider).map_or("unknown", |p| p.name.as_str());
        let early = |error: FlowError| {
            self.metrics.observe_login(label, error.metric_reason());
            tracing::warn!(provider = label, reason = %error, "sign-in response refused");
            fail(error, Opener::Window)
        };
        let state = req.query_param("state").ok_or_else(|| early(FlowError::MissingState))?;
        let flow = match self.store.take_flow(&state).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(early(FlowError::UnknownState)),
            Err(_) => return Err(early(FlowError::Store)),
        };
        let opener = flow.opener;
        let session = flow.session;
        let finished = match self.finish(provider, &flow, req).await {
            Ok(stored) => self.keep(&flow, stored, req).await,
            Err(e) => Err(e),
        };
        match finished {
            Ok((identity, delivery, set_cookie)) => {
                self.metrics.observe_login(label, "completed");
                tracing::info!(provider, session = %session.log_tag(), "sign-in completed");
                // Told once the answer with the rotated cookie is written (`Completed::announce`).
                let announce = matches!(delivery, Delivery::Attached).then_some(session);
                let user = identity.display_name().to_owned();
                Ok(Completed { provider: provider.to_owned(), opener, user, delivery, set_cookie, announce })
            }
            Err(error) => {
                self.report_failure(provider, &session, &error);
                Err(fail(error, opener))
            }
        }
    }

    fn report_failure(&self, provider: &str, session: &SessionId, error: &FlowError) {
        // Only configured names become metric labels.
        let label = self.providers.get(provider).map_or("unknown", |p| p.name.as_str());
        self.metrics.observe_login(label, error.metric_reason());
        tracing::warn!(provider, session = %session.log_tag(), reason = %error, "sign-in failed");
        let description = match error {
            FlowError::Denied { description, .. } if !description.is_empty() => description.clone(),
            other => other.to_string(),
        };
        let event = StatusEvent::AuthFailure {
            provider: provider.to_owned(),
            error: error.oauth_code().to_owned(),
            description,
        };
        self.hub.announce(session, &event);
    }

    /// Binds a finished sign-in: pending for a Teams user (a security code); attached to the
    /// ticket's session when the callback carries that session's cookie (the cookie is rotated)
    /// or when `popup_binding = "ticket"`; otherwise parked under a handoff code that only the
    /// popup's opener receives.
    /// Returns who signed in, where the sign-in went and the `Set-Cookie` of a rotated session.
    async fn keep(
        &self,
        flow: &FlowRecord,
        stored: StoredTokens,
        req: &AuthRequest<'_>,
    ) -> Result<(Identity, Delivery, Option<String>), FlowError> {
        let identity = stored.identity.clone();
        let mut set_cookie = None;
        let delivery = match (&flow.teams_user, &self.teams) {
            (Some(user), Some(teams)) => {
                let code = teams.begin_pending(user, stored).await.map_err(|e| match e {
                    crate::teams::PendingError::Random => FlowError::Random,
                    crate::teams::PendingError::Store => FlowError::Store,
                })?;
                Delivery::TeamsCode(code)
            }
            (Some(_), None) => return Err(FlowError::Store),
            (None, _) if self.binding == PopupBinding::Ticket => {
                self.store.put_tokens(&flow.session, stored).await.map_err(|_| FlowError::Store)?;
                Delivery::Attached
            }
            (None, _) => {
                let same_jar = self.session_of(req.headers).await.map_err(|_| FlowError::Store)? == Some(flow.session);
                if same_jar {
                    self.store.put_tokens(&flow.session, stored).await.map_err(|_| FlowError::Store)?;
                    set_cookie = Some(self.rotate(&flow.session).await.map_err(|_| FlowError::Store)?);
                    Delivery::Attached
                } else {
                    Delivery::Handoff(self.park(flow.session, stored).await?)
                }
            }
        };
        Ok((identity, delivery, set_cookie))
    }

    /// Checks the provider's `allowed_*` rules (every rule that is set must hold; emails and
    /// domains together count as one rule that either may satisfy).
    fn check_sign_in(&self, rules: &SignInRules, identity: &Identity) -> Result<(), FlowError> {
        if let Some(tenants) = &rules.tenants {
            let tid = identity.tenant.as_deref().map(str::to_ascii_lowercase);
            if !tid.is_some_and(|t| tenants.contains(&t)) {
                return Err(FlowError::NotAllowed("tenant"));
            }
        }
        let email_rule = !rules.emails.is_empty() || !rules.domains.is_empty();
        if email_rule && !super::guard::email_listed(&rules.emails, &rules.domains, identity) {
            return Err(FlowError::NotAllowed("email"));
        }
        if !rules.groups.is_empty() && !identity.groups.iter().chain(&identity.roles).any(|g| rules.groups.contains(g))
        {
            return Err(FlowError::NotAllowed("group"));
        }
        Ok(())
    }

    async fn finish(
        &self,
        provider: &str,
        flow: &FlowRecord,
        req: &AuthRequest<'_>,
    ) -> Result<StoredTokens, FlowError> {
        if flow.provider.as_str() != provider {
            return Err(FlowError::ProviderMismatch);
        }
        let p = self.providers.get(provider).ok_or_else(|| FlowError::UnknownProvider(provider.to_owned()))?;
        if let Some(error) = req.query_param("error") {
            let description = req.query_param("error_description").unwrap_or_default();
            return Err(FlowError::Denied { error: sanitize(&error, 64), description: sanitize(&description, 200) });
        }
        let http = self.providers.http();
        let resolved = p.resolve(http).await?;
        // RFC 9207: when the provider names itself in the response, it must be the expected issuer.
        if let (Some(iss), Some(expected)) = (req.query_param("iss"), resolved.endpoints.issuer.fixed()) {
            if iss != expected {
                return Err(FlowError::IssuerMismatch);
            }
        }
        let code = req.query_param("code").filter(|c| !c.is_empty()).ok_or(FlowError::MissingCode)?;
        let redirect_uri = self.redirect_uri(provider);
        let tokens =
            exchange::exchange_code(p, &resolved, self.providers.http_arc(), &redirect_uri, &code, &flow.pkce_verifier)
                .await?;
        let identity = match (resolved.endpoints.user, &resolved.jwks) {
            (UserSource::IdToken, Some(jwks)) if p.wants_id_token(&resolved) => {
                let raw = tokens.id_token.as_ref().ok_or(FlowError::MissingIdToken)?;
                let expect = id_token::Expectations {
                    issuer: &resolved.endpoints.issuer,
                    client_id: &p.client_id,
                    nonce: &flow.nonce,
                };
                let claims = id_token::verify(raw.expose_secret(), jwks, http, &expect).await?;
                let email = claims.email.filter(|_| userinfo::email_trusted(claims.email_verified.as_ref()));
                Identity {
                    provider: p.name.clone(),
                    subject: claims.sub,
                    email,
                    preferred_username: claims.preferred_username,
                    name: claims.name,
                    tenant: claims.tid,
                    groups: id_token::string_list(&claims.groups),
                    roles: id_token::string_list(&claims.roles),
                }
            }
            (UserSource::GitHub, _) => {
                let url = resolved.endpoints.userinfo.as_ref().ok_or(FlowError::MissingIdToken)?;
                userinfo::from_github(http, url, &tokens.access_token, &p.name).await?
            }
            _ => {
                let url = resolved.endpoints.userinfo.as_ref().ok_or(FlowError::MissingIdToken)?;
                userinfo::from_userinfo(http, url, &tokens.access_token, &p.name).await?
            }
        };
        self.check_sign_in(&p.sign_in, &identity)?;
        Ok(StoredTokens {
            identity,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            access_expires_at: tokens.expires_at,
            signed_in_at: SystemTime::now(),
            header_values: Default::default(),
        })
    }
}

/// Keeps provider-supplied text printable and short before it reaches a page, an event or a log.
fn sanitize(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
