//! Identity providers by name: endpoints (preset, discovered or configured), the OAuth 2.0
//! code exchange (oauth2 crate), and who the user is (ID token, userinfo or the GitHub API).

pub mod bearer;
pub mod dev;
pub mod discovery;
pub mod exchange;
pub mod http_client;
pub mod id_token;
pub mod jwks;
pub mod obo;
pub mod presets;
pub mod userinfo;

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::OnceCell;
use url::Url;

use crate::config::types::ProviderName;
use crate::config::{Config, ProviderConfig, ProviderKind};
use http_client::HttpClient;
use jwks::JwksCache;

/// Where a provider's users are described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    /// The verified ID token (OIDC).
    IdToken,
    /// The userinfo endpoint (plain OAuth2).
    UserInfo,
    /// GitHub's `/user` and `/user/emails`.
    GitHub,
}

/// Which `iss` values an ID token may carry.
#[derive(Debug, Clone)]
pub enum IssuerRule {
    /// No ID tokens.
    None,
    /// Exactly one of these.
    OneOf(Vec<String>),
    /// Entra v2.0 issuer of the token's tenant, within `tenant`.
    Entra {
        /// The authority, without a trailing `/`.
        authority: String,
        /// The configured tenant.
        tenant: String,
    },
}

impl IssuerRule {
    /// True when `iss` (with the token's `tid`) is acceptable.
    pub fn accepts(&self, iss: &str, tid: Option<&str>) -> bool {
        match self {
            IssuerRule::None => false,
            IssuerRule::OneOf(list) => list.iter().any(|i| i == iss),
            IssuerRule::Entra { authority, tenant } => presets::entra_issuer_ok(authority, tenant, iss, tid),
        }
    }

    /// The issuer to expect in an authorization response's `iss` (RFC 9207), when fixed.
    pub fn fixed(&self) -> Option<&str> {
        match self {
            IssuerRule::OneOf(list) => list.first().map(String::as_str),
            _ => None,
        }
    }
}

/// A provider's endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorization: Url,
    /// Token endpoint.
    pub token: Url,
    /// Userinfo endpoint.
    pub userinfo: Option<Url>,
    /// JWKS.
    pub jwks: Option<Url>,
    /// RFC 7009 revocation.
    pub revocation: Option<Url>,
    /// Accepted issuers.
    pub issuer: IssuerRule,
    /// Where users are described.
    pub user: UserSource,
}

/// Endpoints plus the key cache that goes with them.
pub struct Resolved {
    /// The endpoints.
    pub endpoints: Endpoints,
    /// Key cache when the provider signs ID tokens.
    pub jwks: Option<JwksCache>,
}

/// Why a provider could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    /// A preset endpoint template did not form a URL.
    #[error("the provider's endpoints are not valid URLs")]
    BadEndpoints,
}

/// Why a provider's warm-up failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WarmUpError {
    /// Its endpoints could not be had.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Its signing keys could not be fetched.
    #[error(transparent)]
    Keys(#[from] jwks::JwksError),
}

enum Source {
    Fixed(Option<Box<Endpoints>>),
    Discover(Url),
}

/// One configured provider.
pub struct Provider {
    /// Name.
    pub name: ProviderName,
    /// Shown to users.
    pub display_name: String,
    /// Client id.
    pub client_id: String,
    client_secret: Option<SecretString>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Who may sign in (`allowed_*`).
    pub sign_in: crate::config::SignInRules,
    /// Validates `Authorization: Bearer` access tokens (`accept_bearer = true`, Entra).
    pub bearer: Option<bearer::BearerVerifier>,
    /// Entra's authority (no trailing `/`), for the on-behalf-of token endpoint of a user's tenant.
    pub entra_authority: Option<String>,
    source: Source,
    revocation_override: Option<Url>,
    resolved: OnceCell<Arc<Resolved>>,
}

impl Provider {
    fn from_config(cfg: &ProviderConfig, public_origin: &str, http: &Arc<dyn HttpClient>) -> Self {
        let bearer = match &cfg.kind {
            ProviderKind::Entra { tenant, authority, bearer: Some(b) } => Some(bearer::BearerVerifier::new(
                cfg.name.clone(),
                authority,
                tenant,
                &cfg.sign_in,
                b.clone(),
                Arc::clone(http),
            )),
            _ => None,
        };
        let source = match &cfg.kind {
            ProviderKind::Entra { tenant, authority, .. } => {
                Source::Fixed(presets::entra(authority.as_str(), tenant).map(Box::new))
            }
            ProviderKind::Google => Source::Fixed(presets::google().map(Box::new)),
            ProviderKind::Github => Source::Fixed(presets::github().map(Box::new)),
            ProviderKind::Oidc { issuer } => Source::Discover(issuer.clone()),
            ProviderKind::OAuth2 { authorize_url, token_url, userinfo_url } => {
                Source::Fixed(Some(Box::new(Endpoints {
                    authorization: authorize_url.clone(),
                    token: token_url.clone(),
                    userinfo: Some(userinfo_url.clone()),
                    jwks: None,
                    revocation: None,
                    issuer: IssuerRule::None,
                    user: UserSource::UserInfo,
                })))
            }
            ProviderKind::Dev => Source::Fixed(presets::dev(public_origin).map(Box::new)),
        };
        Self {
            name: cfg.name.clone(),
            display_name: cfg.display_name.clone(),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            scopes: cfg.scopes.clone(),
            sign_in: cfg.sign_in.clone(),
            bearer,
            entra_authority: match &cfg.kind {
                ProviderKind::Entra { authority, .. } => Some(authority.as_str().trim_end_matches('/').to_owned()),
                _ => None,
            },
            source,
            revocation_override: cfg.revocation_url.clone(),
            resolved: OnceCell::new(),
        }
    }

    /// The endpoints, discovering them on first use; a failed discovery is retried next time.
    pub async fn resolve(&self, http: &dyn HttpClient) -> Result<Arc<Resolved>, ProviderError> {
        self.resolved
            .get_or_try_init(|| async {
                let mut endpoints = match &self.source {
                    Source::Fixed(Some(e)) => (**e).clone(),
                    Source::Fixed(None) => return Err(ProviderError::BadEndpoints),
                    Source::Discover(issuer) => discovery::discover(issuer, http).await?,
                };
                if let Some(r) = &self.revocation_override {
                    endpoints.revocation = Some(r.clone());
                }
                let jwks = endpoints.jwks.clone().map(JwksCache::new);
                Ok(Arc::new(Resolved { endpoints, jwks }))
            })
            .await
            .cloned()
    }

    /// Discovers the endpoints and fetches the signing keys once, ahead of the first sign-in
    /// (readiness waits for it); a failure is retried by the caller.
    pub async fn warm_up(&self, http: &dyn HttpClient) -> Result<(), WarmUpError> {
        let resolved = self.resolve(http).await?;
        if let Some(jwks) = &resolved.jwks {
            jwks.prefetch(http).await?;
        }
        Ok(())
    }

    /// True once the endpoints are known and the signing keys (when the provider has any) fetched.
    pub fn is_warm(&self) -> bool {
        self.resolved.get().is_some_and(|r| r.jwks.as_ref().is_none_or(JwksCache::is_loaded))
    }

    /// True when the `openid` scope is requested, so an ID token is required.
    pub fn wants_id_token(&self, resolved: &Resolved) -> bool {
        resolved.endpoints.user == UserSource::IdToken && self.scopes.iter().any(|s| s == "openid")
    }

    /// The client secret, if any (confidential client).
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }
}

/// Every configured provider, by name, in name order.
pub struct ProviderRegistry {
    providers: Vec<Arc<Provider>>,
    /// Their names, in the same order.
    names: Vec<ProviderName>,
    http: Arc<dyn HttpClient>,
}

impl ProviderRegistry {
    /// From the config; `http` carries every provider call.
    pub fn from_config(config: &Config, http: Arc<dyn HttpClient>) -> Self {
        let origin = config.server.public_url.origin();
        let providers: Vec<Arc<Provider>> =
            config.providers.iter().map(|p| Arc::new(Provider::from_config(p, &origin, &http))).collect();
        let names = providers.iter().map(|p| p.name.clone()).collect();
        Self { providers, names, http }
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.name.as_str() == name)
    }

    /// All providers.
    pub fn all(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// All names, in configuration order.
    pub fn names(&self) -> &[ProviderName] {
        &self.names
    }

    /// Warms up every provider not yet warm (see [`Provider::warm_up`]), logging failures;
    /// true when all are warm afterwards.
    pub async fn warm_up(&self) -> bool {
        let mut all = true;
        for p in self.providers.iter().filter(|p| !p.is_warm()) {
            if let Err(e) = p.warm_up(self.http.as_ref()).await {
                tracing::warn!(provider = %p.name, error = %e, "provider metadata or keys not fetched yet");
                all = false;
            }
        }
        all
    }

    /// Names of the providers not yet warm, in name order.
    pub fn cold(&self) -> Vec<&ProviderName> {
        self.providers.iter().filter(|p| !p.is_warm()).map(|p| &p.name).collect()
    }

    /// The client for provider calls.
    pub fn http(&self) -> &dyn HttpClient {
        self.http.as_ref()
    }

    /// The shared client, for calls that must own it.
    pub fn http_arc(&self) -> &Arc<dyn HttpClient> {
        &self.http
    }
}
