//! `GET /connect/{provider}/callback`: finishes a sign-in (state, code exchange, ID token,
//! store, `auth_success`) and answers the completion page.

use std::time::SystemTime;

use secrecy::ExposeSecret;

use super::completion::{self, Outcome};
use super::error::FlowError;
use super::{AuthRequest, AuthService, Reply};
use crate::channel::StatusEvent;
use crate::providers::{exchange, id_token, userinfo, UserSource};
use crate::session::SessionId;
use crate::store::{FlowRecord, Identity, Opener, StoredTokens};

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
    pub async fn callback(&self, provider: &str, req: &AuthRequest<'_>) -> Result<Reply, CallbackFailure> {
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
            Ok(stored) => self.keep(&flow, stored).await,
            Err(e) => Err(e),
        };
        match finished {
            Ok((identity, code)) => {
                self.metrics.observe_login(label, "completed");
                tracing::info!(provider, session = %session.log_tag(), "sign-in completed");
                let outcome = match &code {
                    Some(code) => Outcome::TeamsCode { user: identity.display_name(), code },
                    None => {
                        self.announce_signed_in(&session).await;
                        Outcome::Success { user: identity.display_name() }
                    }
                };
                Ok(completion::page(200, provider, &self.public.origin(), opener, outcome))
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

    /// Stores the tokens: under the browser session, or pending for a Teams user (with a code).
    async fn keep(&self, flow: &FlowRecord, stored: StoredTokens) -> Result<(Identity, Option<String>), FlowError> {
        let identity = stored.identity.clone();
        match (&flow.teams_user, &self.teams) {
            (Some(user), Some(teams)) => {
                let code = teams.begin_pending(user, stored).await.ok_or(FlowError::Random)?;
                Ok((identity, Some(code)))
            }
            (Some(_), None) => Err(FlowError::Store),
            (None, _) => {
                self.store.put_tokens(&flow.session, stored).await.map_err(|_| FlowError::Store)?;
                Ok((identity, None))
            }
        }
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
        Ok(StoredTokens {
            identity,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            access_expires_at: tokens.expires_at,
            signed_in_at: SystemTime::now(),
        })
    }
}

/// Keeps provider-supplied text printable and short before it reaches a page, an event or a log.
fn sanitize(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
