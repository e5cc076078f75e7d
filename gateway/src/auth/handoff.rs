//! Handoff codes: a sign-in finished in a popup that does not share the task pane's cookies
//! waits in the store until the pane that started it redeems its code (`POST /_gateway/handoff`).
//!
//! ```text
//!  callback (no cookie of the ticket's session) ─▶ code = 256 random bits
//!      store: digest(code) → {session, tokens}, single use, handoff_ttl
//!      completion page ─▶ postMessage(code, gateway origin) | messageParent | notifySuccess
//!  pane ─ POST /_gateway/handoff {"code"} + Origin + its cookie
//!      Origin own or allowed? cookie's session? take digest(code) (atomic, single use)
//!      same session as the code's? → store tokens, rotate cookie, auth_success, 204
//! ```
//!
//! # Invariants
//! The code is stored only as its keyed digest; it attaches only to the session it was issued
//! for, once, within `session.handoff_ttl`; a refused redemption attaches nothing.

use super::error::FlowError;
use super::{AuthRefusal, AuthRequest, AuthService, HandoffRefusal, Redeemed};
use crate::session::{random_token, Purpose, SessionId};
use crate::store::{Handoff, StoredTokens};

/// `POST /_gateway/handoff`.
pub const HANDOFF_PATH: &str = "/_gateway/handoff";
/// Random bytes in a handoff code (256 bits).
const CODE_BYTES: usize = 32;
/// Longest code text looked at.
const MAX_CODE_LEN: usize = 128;

/// The code of a `POST /_gateway/handoff` body: a JSON object whose `code` is a string of 1 to
/// 128 characters (other fields are ignored; anything else, an array included, is refused).
pub fn parse_body(body: &[u8]) -> Result<String, HandoffRefusal> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| HandoffRefusal::Malformed)?;
    let code =
        value.as_object().and_then(|o| o.get("code")).and_then(|c| c.as_str()).ok_or(HandoffRefusal::Malformed)?;
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Err(HandoffRefusal::Malformed);
    }
    Ok(code.to_owned())
}

impl AuthService {
    /// Parks `tokens` for `session` under a fresh handoff code, which it returns.
    pub(crate) async fn park(&self, session: SessionId, tokens: StoredTokens) -> Result<String, FlowError> {
        let code = random_token(CODE_BYTES).ok_or(FlowError::Random)?;
        let key = self.keys.digest(Purpose::HandoffCode, code.as_bytes());
        let provider = tokens.identity.provider.clone();
        let handoff = Handoff { session, tokens };
        self.store.put_handoff(&key, handoff, self.handoff_ttl).await.map_err(|_| FlowError::Store)?;
        self.metrics.observe_login(provider.as_str(), "handoff_parked");
        tracing::debug!(provider = %provider, session = %session.log_tag(), "sign-in waits for its task pane");
        Ok(code)
    }

    /// `POST /_gateway/handoff`: attaches the parked sign-in of `{"code"}` to the request's
    /// session if the code was issued to it and rotates the session's cookie. Returns the rotated
    /// cookie's `Set-Cookie` and the session whose channel hears `auth_success` once the answer
    /// carrying it is written ([`Redeemed`]).
    pub async fn redeem_handoff(&self, req: &AuthRequest<'_>) -> Result<Redeemed, AuthRefusal> {
        match self.try_redeem(req).await {
            Ok(redeemed) => Ok(redeemed),
            Err(Some(refusal)) => {
                self.metrics.observe_login("unknown", refusal.metric());
                tracing::warn!(reason = refusal.metric(), "handoff refused");
                Err(AuthRefusal::Handoff(refusal))
            }
            Err(None) => Err(AuthRefusal::StoreUnavailable),
        }
    }

    /// `Err(None)`: the store failed.
    async fn try_redeem(&self, req: &AuthRequest<'_>) -> Result<Redeemed, Option<HandoffRefusal>> {
        let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
        let own = self.public.origin();
        if origin.is_none() || !crate::channel::origin_allowed(origin, &own, &self.allowed_origins) {
            return Err(Some(HandoffRefusal::ForeignOrigin));
        }
        let code = parse_body(&req.body).map_err(Some)?;
        let session = self.session_of(req.headers).await.map_err(|_| None)?.ok_or(Some(HandoffRefusal::NoSession))?;
        let key = self.keys.digest(Purpose::HandoffCode, code.as_bytes());
        let parked = self.store.take_handoff(&key).await.map_err(|_| None)?.ok_or(Some(HandoffRefusal::UnknownCode))?;
        if parked.session != session {
            return Err(Some(HandoffRefusal::OtherSession));
        }
        let provider = parked.tokens.identity.provider.clone();
        self.store.put_tokens(&session, parked.tokens).await.map_err(|_| None)?;
        let set_cookie = self.rotate(&session).await.map_err(|_| None)?;
        self.metrics.observe_login(provider.as_str(), "handoff_redeemed");
        tracing::info!(provider = %provider, session = %session.log_tag(), "sign-in handed to its task pane");
        Ok(Redeemed { set_cookie, announce: session })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_gives_its_code_and_nothing_else_passes() {
        assert_eq!(parse_body(br#"{"code":"abc"}"#), Ok("abc".to_owned()));
        assert_eq!(parse_body(br#"{"type":"gateway:auth","code":"abc","x":[1]}"#), Ok("abc".to_owned()));
        // Found by fuzzing: a struct read leniently took arrays and skipped non-UTF-8 fields unread.
        let odd = b"{\"code\":\"abc\",\"type\":\"g\xc7\xc7ateway:auth\"}";
        for bad in [&b""[..], b"{}", br#"{"code":""}"#, br#"{"code":1}"#, br#"{"code":"abc""#, br#"["h,"]"#, odd] {
            assert_eq!(parse_body(bad), Err(HandoffRefusal::Malformed), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = format!(r#"{{"code":"{}"}}"#, "a".repeat(129));
        assert_eq!(parse_body(long.as_bytes()), Err(HandoffRefusal::Malformed));
    }
}
