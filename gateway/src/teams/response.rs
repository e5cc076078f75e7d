//! Messaging-extension answers the gateway gives itself.

use serde_json::{json, Value};

/// The `auth` / `openUrl` answer asking the user to sign in at `url`.
pub fn auth_required(url: &str) -> Value {
    json!({"composeExtension": {"type": "auth", "suggestedActions": {"actions": [
        {"type": "openUrl", "value": url, "title": "Sign in to this app"}
    ]}}})
}

/// An empty invoke answer (for `signin/verifyState`).
pub fn ok() -> Value {
    json!({})
}
