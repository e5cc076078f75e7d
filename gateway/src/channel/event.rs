//! Status events and their wire JSON (docs/architecture.md#status-channel-events).

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

    /// Back from [`Self::to_native_json`] (events relayed between gateway instances).
    pub fn from_native_json(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        let data = &v["data"];
        let names = |key: &str| -> Option<Vec<String>> {
            data.as_array()?.iter().map(|e| e[key].as_str().map(str::to_owned)).collect()
        };
        match v["event"].as_str()? {
            "init" => Some(StatusEvent::Init),
            "auth_success" => {
                let list = data.as_array()?;
                let pairs = list
                    .iter()
                    .map(|e| Some((e["providerName"].as_str()?.to_owned(), e["displayName"].as_str()?.to_owned())))
                    .collect::<Option<Vec<_>>>()?;
                Some(StatusEvent::AuthSuccess(pairs))
            }
            "auth_failure" => Some(StatusEvent::AuthFailure {
                provider: data["providerName"].as_str()?.to_owned(),
                error: data["error"].as_str()?.to_owned(),
                description: data["description"].as_str().unwrap_or("").to_owned(),
            }),
            "auth_expired" => Some(StatusEvent::AuthExpired(names("providerName")?)),
            _ => None,
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
        let f = StatusEvent::AuthFailure {
            provider: "dev".into(),
            error: "access_denied".into(),
            description: "no".into(),
        };
        for e in [StatusEvent::Init, s, f, StatusEvent::AuthExpired(vec!["a".into(), "b".into()])] {
            assert_eq!(StatusEvent::from_native_json(&e.to_native_json()), Some(e));
        }
    }
}
