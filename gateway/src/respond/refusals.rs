//! Each layer's refusals and outcomes as answers: the statuses users and their clients rely on.

use pingora::{Error, ErrorSource, ErrorType};
use serde_json::{json, Map, Value};

use super::Answer;
use crate::auth::error::{is_provider_outage, FlowError};
use crate::auth::{AuthRefusal, HandoffRefusal, SessionState, SignInLink};
use crate::channel::{ChannelRefusal, EngineIoError};
use crate::metrics::Limit;
use crate::providers::bearer::BearerError;
use crate::providers::exchange::ExchangeError;
use crate::providers::id_token::IdTokenError;
use crate::teams::bot_token::BotTokenError;
use crate::teams::BotRefusal;

const STORE_UNAVAILABLE: &str = "the token store is unavailable; try again shortly";

fn links_json(links: &[SignInLink]) -> Value {
    let mut providers = Map::new();
    for l in links {
        providers.insert(l.provider.clone(), json!({"connect_url": l.connect_url}));
    }
    Value::Object(providers)
}

impl From<AuthRefusal> for Answer {
    fn from(refusal: AuthRefusal) -> Self {
        match refusal {
            AuthRefusal::StoreUnavailable => Answer::error(503, "temporarily_unavailable", STORE_UNAVAILABLE),
            AuthRefusal::SignInRequired { links, set_cookie } => {
                Answer::json(401, &json!({"error": "authentication_required", "providers": links_json(&links)}))
                    .with_header_static("www-authenticate", "Gateway realm=\"gateway\"")
                    .with_cookie(set_cookie.as_deref())
            }
            AuthRefusal::Forbidden => Answer::error(403, "forbidden", "your account may not use this resource"),
            AuthRefusal::ForeignPage => Answer::json(403, &json!({"error": "forbidden_origin"})),
            AuthRefusal::NotSameOrigin(what) => {
                Answer::error(403, "forbidden", &format!("{what} must come from the gateway's origin"))
            }
            AuthRefusal::UnknownProvider(name) => {
                Answer::json(400, &json!({"error": "unknown_provider", "provider": name}))
            }
            AuthRefusal::Bearer { error, scopes } => bearer_refused(error, &scopes),
            AuthRefusal::ConsentRequired { entra_error, claims, links, set_cookie } => {
                let mut body = json!({"error": "consent_required", "entra_error": entra_error, "claims": claims});
                if !links.is_empty() {
                    body["providers"] = links_json(&links);
                }
                Answer::json(401, &body).with_cookie(set_cookie.as_deref())
            }
            AuthRefusal::OboFailed(message) => Answer::error(502, "temporarily_unavailable", &message),
            AuthRefusal::Handoff(h) => h.into(),
        }
    }
}

/// RFC 6750 §3: 401 `invalid_token`, 403 `insufficient_scope` (naming the scopes), or 503 when
/// the provider's keys cannot be had; a challenge on each but the 503.
fn bearer_refused(error: BearerError, scopes: &[String]) -> Answer {
    let (status, code) = match error {
        BearerError::MissingScope => (403, "insufficient_scope"),
        BearerError::KeysUnavailable => (503, "temporarily_unavailable"),
        _ => (401, "invalid_token"),
    };
    let answer = Answer::json(status, &json!({"error": code, "error_description": error.to_string()}));
    if status == 503 {
        return answer;
    }
    let scope = if code == "insufficient_scope" { format!(", scope=\"{}\"", scopes.join(" ")) } else { String::new() };
    answer.with_header(
        http::header::WWW_AUTHENTICATE,
        &format!("Bearer error=\"{code}\", error_description=\"{error}\"{scope}"),
    )
}

impl From<HandoffRefusal> for Answer {
    fn from(refusal: HandoffRefusal) -> Self {
        let (status, error, message) = match refusal {
            HandoffRefusal::ForeignOrigin => (403, "forbidden", "handoff must come from the gateway's origin"),
            HandoffRefusal::Malformed => (400, "invalid_request", "expected {\"code\": \"...\"}"),
            HandoffRefusal::NoSession => (401, "no_session", "no session cookie came with the code"),
            HandoffRefusal::UnknownCode => (400, "invalid_grant", "the code is unknown, expired or already used"),
            HandoffRefusal::OtherSession => (403, "invalid_grant", "the code belongs to another session"),
        };
        Answer::error(status, error, message)
    }
}

impl From<SessionState> for Answer {
    fn from(state: SessionState) -> Self {
        let mut providers = Map::new();
        for p in state.providers {
            let user = p.user.map(|i| {
                json!({"id": i.subject, "name": i.display_name(), "email": i.email,
                       "preferred_username": i.preferred_username})
            });
            providers.insert(
                p.name,
                json!({"display_name": p.display_name, "signed_in": user.is_some(),
                       "user": user.unwrap_or(Value::Null), "connect_url": p.connect_url}),
            );
        }
        Answer::json(200, &json!({"providers": providers, "ticket": state.ticket}))
            .with_cookie(state.set_cookie.as_deref())
    }
}

/// The status of a failed sign-in's completion page: 404 for an unknown provider, 403 for an
/// account outside the provider's rules, 502 when the provider failed, 503 when the gateway did,
/// 400 for a request that cannot finish.
pub(super) fn flow_status(error: &FlowError) -> u16 {
    match error {
        FlowError::UnknownProvider(_) => 404,
        FlowError::NotAllowed(_) => 403,
        FlowError::Exchange(ExchangeError::Refused { error }) if !is_provider_outage(error) => 400,
        FlowError::ProviderUnavailable(_) | FlowError::Exchange(_) | FlowError::UserInfo(_) => 502,
        FlowError::IdToken(IdTokenError::Key(e)) if e.is_outage() => 502,
        FlowError::Store | FlowError::Random => 503,
        _ => 400,
    }
}

/// A request to the bot endpoint the Teams layer refused, labelled by what it is.
pub fn bot_refusal(refusal: &BotRefusal) -> Answer {
    let (status, code) = match refusal {
        BotRefusal::TooLarge(_) => (413, "payload_too_large"),
        BotRefusal::BadActivity(_) | BotRefusal::BadExchange => (400, "bad_request"),
        BotRefusal::Unauthenticated(BotTokenError::KeysUnavailable) => (503, "temporarily_unavailable"),
        BotRefusal::Unauthenticated(_) => (401, "unauthorized"),
        BotRefusal::SsoTokenRefused | BotRefusal::CodeMismatch => (412, "precondition_failed"),
    };
    Answer::error(status, code, &refusal.to_string())
}

impl From<Limit> for Answer {
    /// 503 for a gateway-wide limit, 429 for one client's, 408 for a deadline; `Retry-After` on
    /// 429 and 503 (a client at its own limit waits longer than one meeting a full gateway).
    fn from(limit: Limit) -> Self {
        let (status, code, message, retry_after) = match limit {
            Limit::Connections | Limit::ChannelTotal => {
                (503, "server_busy", "the gateway is busy; try again shortly", Some(1))
            }
            Limit::ConnectionsPerClient | Limit::ChannelPerClient | Limit::ChannelPerSession | Limit::JoinTimeout => {
                (429, "too_many_requests", "too many open connections from this client", Some(5))
            }
            Limit::HeaderTimeout | Limit::BodyRate => (408, "request_timeout", "the request was too slow", None),
        };
        Answer::error(status, code, message).retry_after(retry_after)
    }
}

impl From<ChannelRefusal> for Answer {
    fn from(refusal: ChannelRefusal) -> Self {
        match refusal {
            ChannelRefusal::NotWebSocket13 => {
                Answer::error(400, "bad_request", "a WebSocket version 13 handshake is required")
            }
            ChannelRefusal::EngineIo(e) => {
                let (code, message) = e.code_and_message();
                let status = match e {
                    EngineIoError::PayloadTooLarge => 413,
                    EngineIoError::ServerBusy => 503,
                    _ => 400,
                };
                let retry_after = (e == EngineIoError::ServerBusy).then_some(1);
                Answer::json(status, &json!({"code": code, "message": message})).retry_after(retry_after)
            }
            ChannelRefusal::OverLimit(limit) => limit.into(),
            ChannelRefusal::NoSession => {
                Answer::error(401, "unauthorized", "the status channel needs a session cookie or ticket")
            }
            ChannelRefusal::SessionFull => {
                Answer::error(429, "too_many_requests", "too many sockets for this session").retry_after(Some(5))
            }
            ChannelRefusal::NotFound => super::not_found(),
        }
    }
}

/// The status a proxying error maps to (0: the client is gone, nothing to write).
pub fn proxy_error_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}
