//! The Teams messaging-extension auth loop, done by the gateway for an unmodified bot service.
//!
//! ```text
//!  Teams ─ POST bot_path (composeExtension/query) ─▶ bot token ok? user validated?
//!     no ◀─ 200 {"composeExtension":{"type":"auth", openUrl: /connect/{p}/t.<signed user ref>}}
//!  popup ─ /connect/{p}/t.<ref> → provider → callback: tokens stored *pending* for that user,
//!          6-digit code (kept as an HMAC) → completion page: notifySuccess(code), shows the code
//!  Teams ─ POST bot_path (same query, value.state = code) ─▶ code matches that user's pending code?
//!     yes: tokens promoted to validated; activity forwarded without `state`, with identity headers
//!     no:  `auth` again; after 5 wrong codes the pending sign-in is discarded
//! ```
//!
//! With `[teams] sso = true`, Teams' single sign-on needs no popup: a `signin/tokenExchange`
//! invoke (or a query reissued with `value.authentication.token`) carries an Entra token for the
//! bot's API; the gateway validates it with the Teams provider's bearer rules, exchanges it on
//! behalf of the user for `[teams] scopes`, validates the user, and answers 200. A token it
//! cannot use, and every further copy of an invoke `value.id` (Teams sends one per signed-in
//! client), gets 412, on which Teams falls back to the sign-in card.
//!
//! Every piece of the loop's state (pending sign-ins and their codes, wrong-code counts,
//! validated users, handled invokes) lives in the token store ([`state`]), so gateways sharing a
//! Redis store serve any step of it: a sign-in started on one instance finishes on another.

pub mod activity;
pub mod bot_token;
mod refusal;
pub mod response;
pub mod security_code;
mod state;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

use crate::config::TeamsConfig;
use crate::session::{Keyring, Purpose};
use crate::store::{StoredTokens, TokenStore};
use activity::{Activity, ActivityError, VERIFY_STATE_INVOKE};
use bot_token::BotTokenVerifier;
pub use refusal::BotRefusal;
pub use state::PendingError;
use state::TeamsState;

/// Prefix marking a Teams user reference in a connect URL (`/connect/{provider}/t.<ref>`).
pub const TEAMS_TICKET_PREFIX: &str = "t.";
/// Lifetime of the signed user reference in the sign-in URL.
const REF_TTL: Duration = Duration::from_secs(600);

/// `signin/tokenExchange`: Teams asks the bot to exchange a single sign-on token.
pub const TOKEN_EXCHANGE_INVOKE: &str = "signin/tokenExchange";

/// Single sign-on for the Teams loop, provided by the sign-in service (which holds the
/// providers, the token store and the on-behalf-of exchange).
#[async_trait::async_trait]
pub trait TeamsSso: Send + Sync {
    /// The user of an Entra `token` for the bot's API, validated by `provider`'s bearer rules and
    /// exchanged on the user's behalf for `scopes`; `Err` says why not, for the 412 answer.
    async fn sign_in_with_token(
        &self,
        provider: &str,
        token: &str,
        scopes: &[String],
    ) -> Result<Arc<StoredTokens>, String>;
}

/// What to do with a request to `bot_path`.
#[derive(Debug)]
pub enum BotDecision {
    /// Answer 200 with this JSON; forward nothing.
    Reply(serde_json::Value),
    /// Forward, with this user's identity when validated, and this body instead of the original.
    Forward {
        /// Validated tokens of the user, if any.
        tokens: Option<Arc<StoredTokens>>,
        /// A rewritten body (`value.state` removed).
        body: Option<Vec<u8>>,
    },
    /// Answer with this status and JSON (an invoke response); forward nothing.
    Invoke {
        /// HTTP status: 200, or 412 so Teams falls back to the sign-in card.
        status: u16,
        /// The `TokenExchangeInvokeResponse`.
        json: serde_json::Value,
    },
    /// Refuse; forward nothing.
    Refuse(BotRefusal),
}

/// The loop: its settings, the bot-token check (whose key cache holds only Bot Framework public
/// keys, so each instance keeps its own) and its state in the token store.
pub struct TeamsService {
    config: TeamsConfig,
    keys: Keyring,
    verifier: Option<BotTokenVerifier>,
    state: TeamsState,
    public_origin: String,
}

impl TeamsService {
    /// From `[teams]`; `http` fetches the Bot Framework keys; the loop's state lives in `store`
    /// (validated users for `token_ttl` after their sign-in, as any tokens).
    pub fn new(
        config: &TeamsConfig,
        keys: Keyring,
        store: Arc<dyn TokenStore>,
        token_ttl: Duration,
        public_origin: String,
        http: Arc<dyn crate::providers::http_client::HttpClient>,
    ) -> Self {
        let code_key = hmac::Key::new(hmac::HMAC_SHA256, &keys.derive(b"gateway/teams-codes/v1").unwrap_or_default());
        let verifier = config.verify_bot_token.then(|| {
            BotTokenVerifier::new(config.openid_metadata.clone(), config.app_id.clone(), config.tenant.as_ref(), http)
        });
        let state = TeamsState::new(store, keys.clone(), code_key, config.code_ttl.get(), token_ttl);
        Self { config: config.clone(), keys, verifier, state, public_origin }
    }

    /// Records `user` as signed in with `tokens`, for every gateway sharing the store.
    async fn validate(&self, user: &str, tokens: &StoredTokens) {
        self.state.validate(user, tokens).await;
    }

    /// The tokens of a validated `user`, if any.
    async fn validated(&self, user: &str) -> Option<Arc<StoredTokens>> {
        self.state.validated(user, &self.config.provider).await
    }

    /// The bot endpoint path.
    pub fn bot_path(&self) -> &str {
        &self.config.bot_path
    }

    /// The sign-in URL for a Teams user.
    pub fn sign_in_url(&self, user: &str) -> String {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + REF_TTL.as_secs();
        let mut payload = exp.to_be_bytes().to_vec();
        payload.extend_from_slice(user.as_bytes());
        let reference = self.keys.sign(Purpose::TeamsUser, &payload);
        format!("{}/connect/{}/{TEAMS_TICKET_PREFIX}{reference}?opener=teams", self.public_origin, self.config.provider)
    }

    /// The Teams user of a `t.<ref>` connect ticket, if genuine and unexpired.
    pub fn verify_reference(keys: &Keyring, ticket: &str) -> Option<String> {
        let payload = keys.verify(Purpose::TeamsUser, ticket.strip_prefix(TEAMS_TICKET_PREFIX)?).ok()?;
        let (exp, user) = payload.split_at_checked(8)?;
        let exp = u64::from_be_bytes(exp.try_into().ok()?);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        (exp >= now).then(|| String::from_utf8(user.to_vec()).ok()).flatten()
    }

    /// After a successful popup sign-in: keep the tokens pending (in the token store, for
    /// `code_ttl`) and return the code to show.
    pub async fn begin_pending(&self, user: &str, tokens: StoredTokens) -> Result<String, PendingError> {
        self.state.begin(user, &tokens).await
    }

    /// Checks `candidate` against `user`'s pending code; on a match the tokens become validated.
    /// Single use on every instance; wrong codes count, the fifth discards the pending sign-in.
    async fn redeem(&self, user: &str, candidate: &str) -> Option<Arc<StoredTokens>> {
        let tokens = Arc::new(self.state.redeem(user, candidate).await?);
        self.validate(user, &tokens).await;
        tracing::info!(provider = %tokens.identity.provider, "teams sign-in validated");
        Some(tokens)
    }

    /// `signin/tokenExchange`: 200 and the user validated, or 412 (a token it cannot use, or a
    /// copy of an invoke already handled by any gateway).
    async fn token_exchange(&self, activity: &Activity, user: &str, sso: &dyn TeamsSso) -> BotDecision {
        let Some((id, connection, token)) = activity.token_exchange() else {
            return BotDecision::Refuse(BotRefusal::BadExchange);
        };
        let answer = |status: u16, failure: Option<&str>| BotDecision::Invoke {
            status,
            json: serde_json::json!({"id": id, "connectionName": connection, "failureDetail": failure}),
        };
        if !self.state.first_invoke(id).await {
            return answer(412, Some("this token exchange was already handled"));
        }
        match sso.sign_in_with_token(self.config.provider.as_str(), token, &self.config.scopes).await {
            Ok(tokens) => {
                self.validate(user, &tokens).await;
                tracing::info!("teams single sign-on validated");
                answer(200, None)
            }
            Err(reason) => {
                tracing::info!(reason = %reason, "teams single sign-on refused");
                answer(412, Some("the token could not be exchanged"))
            }
        }
    }

    /// Decides what to do with one request to `bot_path`; `sso` serves `[teams] sso = true`.
    pub async fn handle(&self, authorization: Option<&str>, body: &[u8], sso: Option<&dyn TeamsSso>) -> BotDecision {
        let activity = match Activity::parse(body) {
            Ok(a) => a,
            Err(e @ ActivityError::TooLarge) => return BotDecision::Refuse(BotRefusal::TooLarge(e)),
            Err(e) => return BotDecision::Refuse(BotRefusal::BadActivity(e)),
        };
        if let Some(v) = &self.verifier {
            if let Err(e) = v.verify(authorization, activity.service_url()).await {
                tracing::warn!(reason = %e, "bot request refused");
                return BotDecision::Refuse(BotRefusal::Unauthenticated(e));
            }
        }
        if self.config.pass_through {
            return BotDecision::Forward { tokens: None, body: None };
        }
        let user = match activity.user_key() {
            Ok(u) => u,
            Err(e) => return BotDecision::Refuse(BotRefusal::BadActivity(e)),
        };
        let sso = sso.filter(|_| self.config.sso);
        if let (Some(sso), true) = (sso, activity.kind() == "invoke" && activity.name() == TOKEN_EXCHANGE_INVOKE) {
            return self.token_exchange(&activity, &user, sso).await;
        }
        if let (Some(sso), Some(token), true) = (sso, activity.sso_token(), activity.is_query()) {
            return match sso.sign_in_with_token(self.config.provider.as_str(), token, &self.config.scopes).await {
                Ok(tokens) => {
                    self.validate(&user, &tokens).await;
                    BotDecision::Forward { tokens: Some(tokens), body: Some(activity.without_sso_token()) }
                }
                Err(reason) => {
                    tracing::info!(reason = %reason, "teams single sign-on refused");
                    BotDecision::Refuse(BotRefusal::SsoTokenRefused)
                }
            };
        }
        if activity.kind() == "invoke" && activity.name() == VERIFY_STATE_INVOKE {
            return match activity.state() {
                Some(code) if self.redeem(&user, code).await.is_some() => BotDecision::Reply(response::ok()),
                _ => BotDecision::Refuse(BotRefusal::CodeMismatch),
            };
        }
        if activity.kind() == "message" {
            // Only a message that looks like a code is tried, so chatting never burns attempts.
            let looks_like_code =
                |t: &str| t.trim().len() == security_code::CODE_DIGITS && t.trim().bytes().all(|b| b.is_ascii_digit());
            if let Some(text) = activity.text().filter(|t| looks_like_code(t)) {
                if self.redeem(&user, text).await.is_some() {
                    // The code typed into the chat is answered here and never reaches the bot.
                    return BotDecision::Reply(response::ok());
                }
            }
        }
        let validated = self.validated(&user).await;
        if !activity.is_query() {
            return BotDecision::Forward { tokens: validated, body: None };
        }
        if let Some(tokens) = validated {
            let body = activity.state().is_some().then(|| activity.clone().without_state());
            return BotDecision::Forward { tokens: Some(tokens), body };
        }
        if let Some(code) = activity.state() {
            if let Some(tokens) = self.redeem(&user, code).await {
                return BotDecision::Forward { tokens: Some(tokens), body: Some(activity.without_state()) };
            }
        }
        BotDecision::Reply(response::auth_required(&self.sign_in_url(&user)))
    }
}

#[cfg(test)]
mod tests;
