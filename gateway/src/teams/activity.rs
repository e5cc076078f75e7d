//! Bot Framework activities: the few fields the auth loop reads, kept as JSON so an activity can
//! be forwarded with nothing but `value.state` removed.

use serde_json::Value;

/// Largest activity accepted on `bot_path` (the proxy's request buffer holds 64 KiB).
pub const MAX_ACTIVITY_BYTES: usize = 64 * 1024;

/// Invokes that are messaging-extension queries needing a signed-in user.
pub const QUERY_INVOKES: [&str; 4] = [
    "composeExtension/query",
    "composeExtension/fetchTask",
    "composeExtension/submitAction",
    "composeExtension/queryLink",
];
/// The invoke Teams sends after a sign-in card flow.
pub const VERIFY_STATE_INVOKE: &str = "signin/verifyState";

/// Why an activity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// Larger than [`MAX_ACTIVITY_BYTES`].
    #[error("the activity is larger than {MAX_ACTIVITY_BYTES} bytes")]
    TooLarge,
    /// Not a JSON object.
    #[error("the activity is not valid JSON: {0}")]
    Malformed(String),
    /// No sender to key the user by.
    #[error("the activity has no from.id")]
    NoSender,
}

/// A parsed activity.
#[derive(Debug, Clone)]
pub struct Activity {
    json: Value,
}

impl Activity {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<Self, ActivityError> {
        if body.len() > MAX_ACTIVITY_BYTES {
            return Err(ActivityError::TooLarge);
        }
        let json: Value = serde_json::from_slice(body).map_err(|e| ActivityError::Malformed(e.to_string()))?;
        if !json.is_object() {
            return Err(ActivityError::Malformed("expected a JSON object".to_owned()));
        }
        Ok(Self { json })
    }

    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.json.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// `type`.
    pub fn kind(&self) -> &str {
        self.str_at("/type").unwrap_or("")
    }

    /// `name` (for invokes).
    pub fn name(&self) -> &str {
        self.str_at("/name").unwrap_or("")
    }

    /// `serviceUrl`.
    pub fn service_url(&self) -> Option<&str> {
        self.str_at("/serviceUrl")
    }

    /// `text` (messages).
    pub fn text(&self) -> Option<&str> {
        self.str_at("/text")
    }

    /// `value.state` (the security code Teams sends back).
    pub fn state(&self) -> Option<&str> {
        self.str_at("/value/state")
    }

    /// True for the invokes that need a signed-in user.
    pub fn is_query(&self) -> bool {
        self.kind() == "invoke" && QUERY_INVOKES.contains(&self.name())
    }

    /// The user key: tenant and `from.aadObjectId`, else `from.id`.
    pub fn user_key(&self) -> Result<String, ActivityError> {
        let tenant =
            self.str_at("/channelData/tenant/id").or_else(|| self.str_at("/conversation/tenantId")).unwrap_or("-");
        let user =
            self.str_at("/from/aadObjectId").or_else(|| self.str_at("/from/id")).ok_or(ActivityError::NoSender)?;
        Ok(format!("{tenant}/{user}"))
    }

    /// `value.id`, `value.connectionName` and `value.token` of a `signin/tokenExchange` invoke.
    pub fn token_exchange(&self) -> Option<(&str, &str, &str)> {
        Some((
            self.str_at("/value/id")?,
            self.str_at("/value/connectionName").unwrap_or(""),
            self.str_at("/value/token")?,
        ))
    }

    /// `value.authentication.token` of a messaging-extension query reissued with single sign-on.
    pub fn sso_token(&self) -> Option<&str> {
        self.str_at("/value/authentication/token")
    }

    /// The activity without `value.authentication` (its token stays with the gateway), serialised.
    pub fn without_sso_token(mut self) -> Vec<u8> {
        if let Some(v) = self.json.get_mut("value").and_then(Value::as_object_mut) {
            v.remove("authentication");
        }
        self.json.to_string().into_bytes()
    }

    /// The activity without `value.state`, serialised for the upstream.
    pub fn without_state(mut self) -> Vec<u8> {
        if let Some(v) = self.json.get_mut("value").and_then(Value::as_object_mut) {
            v.remove("state");
        }
        self.json.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = r#"{"type":"invoke","name":"composeExtension/query","serviceUrl":"https://smba.trafficmanager.net/amer/",
      "from":{"id":"29:1abc","aadObjectId":"00000000-aaaa"},"conversation":{"tenantId":"tid-1"},
      "channelData":{"tenant":{"id":"tid-1"}},"value":{"commandId":"search","parameters":[{"name":"q","value":"x"}],"state":"123456"}}"#;

    #[test]
    fn query_fields_and_user_key_come_from_the_documented_places() {
        let a = Activity::parse(QUERY.as_bytes()).unwrap();
        assert!(a.is_query());
        assert_eq!(a.user_key().unwrap(), "tid-1/00000000-aaaa");
        assert_eq!(a.state(), Some("123456"));
        let forwarded: Value = serde_json::from_slice(&a.without_state()).unwrap();
        assert!(forwarded["value"].get("state").is_none());
        assert_eq!(forwarded["value"]["commandId"], "search");
    }

    #[test]
    fn malformed_and_oversized_activities_are_refused() {
        assert!(matches!(Activity::parse(b"{nope"), Err(ActivityError::Malformed(_))));
        assert!(matches!(Activity::parse(b"[1]"), Err(ActivityError::Malformed(_))));
        assert_eq!(Activity::parse(&vec![b' '; MAX_ACTIVITY_BYTES + 1]).unwrap_err(), ActivityError::TooLarge);
        let no_from = Activity::parse(br#"{"type":"invoke"}"#).unwrap();
        assert_eq!(no_from.user_key(), Err(ActivityError::NoSender));
    }
}
