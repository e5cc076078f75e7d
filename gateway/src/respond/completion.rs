//! The completion page of the popup: no token in it; it tells the opener (postMessage to the
//! gateway's origin only), the Office dialog (`messageParent`) or Teams (`notifySuccess` /
//! `notifyFailure`), then closes the popup.
//!
//! The outcome is also embedded as JSON, for any script of the gateway's origin that reads the
//! page: `<script type="application/json" id="gateway-outcome">{"provider", "status",
//! "handoff", "error"}</script>`. A handoff code reaches only those three receivers: the
//! opener's origin must be the gateway's, Office and Teams deliver only to the add-in that
//! opened the dialog.

use serde_json::json;

use super::{html_escape, reply, Reply};
use crate::session::random_token;
use crate::store::Opener;

const TEMPLATE: &str = include_str!("../../assets/completion.html");
/// office.js, loaded only when the Office dialog API opened the popup.
const OFFICE_JS: &str = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js";
/// The Teams JavaScript SDK, loaded only when Teams opened the popup.
const TEAMS_JS: &str = "https://res.cdn.office.net/teams-js/2.34.0/js/MicrosoftTeams.min.js";
/// How long the page stays open before closing itself.
const CLOSE_DELAY_MS: u32 = 600;

/// What the page reports.
pub enum Outcome<'a> {
    /// Signed in as `user`.
    Success {
        /// The user's display name.
        user: &'a str,
    },
    /// Signed in; the task pane that opened the popup redeems `code` to attach it.
    Handoff {
        /// The user's display name.
        user: &'a str,
        /// The handoff code.
        code: &'a str,
    },
    /// Signed in from Teams: the code goes to `notifySuccess` and is shown to type if needed.
    TeamsCode {
        /// The user's display name.
        user: &'a str,
        /// The security code.
        code: &'a str,
    },
    /// Failed with an OAuth error code.
    Failure {
        /// The OAuth error code.
        error: &'a str,
        /// What went wrong, for the person.
        description: &'a str,
    },
}

/// The completion page for `provider`.
pub fn page(status: u16, provider: &str, origin: &str, opener: Opener, outcome: Outcome<'_>) -> Reply {
    let nonce = random_token(16).unwrap_or_else(|| "gateway".to_owned());
    let (title, message, outcome, page) = match outcome {
        Outcome::Success { user } => (
            "Signed in".to_owned(),
            format!("Signed in as {}. This window closes by itself.", user),
            json!({"provider": provider, "status": "success", "handoff": null, "error": null}),
            json!({"closeDelayMs": CLOSE_DELAY_MS}),
        ),
        Outcome::Handoff { user, code } => (
            "Signed in".to_owned(),
            format!("Signed in as {user}. Returning to the add-in; this window closes by itself."),
            json!({"provider": provider, "status": "success", "handoff": code, "error": null}),
            json!({"closeDelayMs": CLOSE_DELAY_MS}),
        ),
        Outcome::TeamsCode { user, code } => (
            "Signed in".to_owned(),
            format!("Signed in as {user}. If this window stays open, type this code in Teams: {code}"),
            json!({"provider": provider, "status": "success", "handoff": null, "error": null}),
            json!({"code": code, "closeDelayMs": CLOSE_DELAY_MS * 50}),
        ),
        Outcome::Failure { error, description } => (
            "Sign-in failed".to_owned(),
            format!("{description} ({error}). You can close this window and try again."),
            json!({"provider": provider, "status": "failure", "handoff": null, "error": error}),
            json!({"closeDelayMs": CLOSE_DELAY_MS * 4}),
        ),
    };
    let mut page = page;
    page["origin"] = json!(origin);
    page["opener"] = json!(opener_name(opener));
    let sdk = match opener {
        Opener::Office => format!("<script src=\"{OFFICE_JS}\"></script>"),
        Opener::Teams => format!("<script src=\"{TEAMS_JS}\"></script>"),
        Opener::Window => String::new(),
    };
    // `</` cannot appear in JSON strings here once escaped, so the data cannot close its element.
    let outcome = outcome.to_string().replace("</", "<\\/");
    let page = page.to_string().replace("</", "<\\/");
    let body = TEMPLATE
        .replace("{{NONCE}}", &nonce)
        .replace("{{SDK_SCRIPT}}", &sdk)
        .replace("{{TITLE}}", &html_escape(&title))
        .replace("{{MESSAGE}}", &html_escape(&message))
        .replace("{{OUTCOME}}", &outcome)
        .replace("{{PAGE}}", &page);
    let mut r = reply(status, "text/html; charset=utf-8", body);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}' {OFFICE_JS} {TEAMS_JS}; style-src 'nonce-{nonce}'; \
         connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(v) = http::HeaderValue::from_str(&csp) {
        r.headers_mut().insert("content-security-policy", v);
    }
    r.headers_mut().insert("referrer-policy", http::HeaderValue::from_static("no-referrer"));
    r
}

fn opener_name(o: Opener) -> &'static str {
    match o {
        Opener::Window => "window",
        Opener::Office => "office",
        Opener::Teams => "teams",
    }
}
