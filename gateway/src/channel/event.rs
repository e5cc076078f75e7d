//! Status events and their wire JSON (design: status channel events, a contract).

use serde_json::{json, Value};

/// One event for a session's sockets.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusEvent {
    /// On connect: `"Private socket session established"`.
    Init,
    /// Every provider the session is signed in to: `(providerName, displayName)`.
    AuthSuccess(Vec<(String, String)>),
    /// A failed sign-in.
    AuthFailure {
        /// Provider.
        provider: String,
        /// OAuth error code.
        error: String,
        /// Human description, without secrets.
        description: String,
    },
    /// Providers whose tokens were purged (lifetime or logout).
    AuthExpired(Vec<String>),
}

impl StatusEvent {
    /// The event name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            StatusEvent::Init => "init",
            StatusEvent::AuthSuccess(_) => "auth_success",
            StatusEvent::AuthFailure { .. } => "auth_failure",
            StatusEvent::AuthExpired(_) => "auth_expired",
        }
    }

    /// The `data` of the event.
    pub fn data(&self) -> Value {
        match self {
            StatusEvent::Init => json!("Private socket session established"),
            StatusEvent::AuthSuccess(list) => {
                Value::Array(list.iter().map(|(p, n)| json!({"providerName": p, "displayName": n})).collect())
            }
            StatusEvent::AuthFailure { provider, error, description } => {
                json!({"providerName": provider, "error": error, "description": description})
            }
            StatusEvent::AuthExpired(list) => Value::Array(list.iter().map(|p| json!({"providerName": p})).collect()),
        }
    }

    /// Native framing: `{"event": NAME, "data": ...}`.
    pub fn to_native_json(&self) -> String {
        json!({"event": self.name(), "data": self.data()}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_follow_the_contract() {
        assert_eq!(
            StatusEvent::Init.to_native_json(),
            r#"{"data":"Private socket session established","event":"init"}"#
        );
        let s = StatusEvent::AuthSuccess(vec![("dev".into(), "Ada".into())]);
        assert_eq!(s.data(), json!([{"providerName":"dev","displayName":"Ada"}]));
        assert_eq!(StatusEvent::AuthExpired(vec!["dev".into()]).data(), json!([{"providerName":"dev"}]));
    }
}
