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

use super::{html_escape, Answer};
use crate::auth::error::FlowError;
use crate::auth::flow::Opener;
use crate::auth::{Completed, Delivery};
use crate::session::random_token;

const TEMPLATE: &str = include_str!("../../assets/completion.html");
/// office.js, loaded only when the Office dialog API opened the popup.
const OFFICE_JS: &str = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js";
/// The Teams JavaScript SDK, loaded only when Teams opened the popup.
const TEAMS_JS: &str = "https://res.cdn.office.net/teams-js/2.34.0/js/MicrosoftTeams.min.js";
/// How long the page stays open before closing itself.
const CLOSE_DELAY_MS: u32 = 600;

/// What the page reports.
enum Outcome<'a> {
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

/// The page of a finished sign-in (200).
pub fn completion_page(origin: &str, done: &Completed) -> Answer {
    let user = done.user.as_str();
    let outcome = match &done.delivery {
        Delivery::Attached => Outcome::Success { user },
        Delivery::Handoff(code) => Outcome::Handoff { user, code },
        Delivery::TeamsCode(code) => Outcome::TeamsCode { user, code },
    };
    page(200, &done.provider, origin, done.opener, outcome).with_cookie(done.set_cookie.as_deref())
}

/// The page of a failed sign-in: the OAuth error code and what went wrong, with the status of
/// `error` (`FlowError`: 4xx for the request, 502 for the provider, 503 for the gateway).
pub fn flow_failure_page(origin: &str, provider: &str, opener: Opener, error: &FlowError) -> Answer {
    let description = match error {
        FlowError::Denied { description, .. } if !description.is_empty() => description.clone(),
        other => other.to_string(),
    };
    let outcome = Outcome::Failure { error: error.oauth_code(), description: &description };
    page(super::refusals::flow_status(error), provider, origin, opener, outcome)
}

fn page(status: u16, provider: &str, origin: &str, opener: Opener, outcome: Outcome<'_>) -> Answer {
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
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}' {OFFICE_JS} {TEAMS_JS}; style-src 'nonce-{nonce}'; \
         connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    Answer::html(status, body)
        .with_header(http::header::CONTENT_SECURITY_POLICY, &csp)
        .with_header_static("referrer-policy", "no-referrer")
}

fn opener_name(o: Opener) -> &'static str {
    match o {
        Opener::Window => "window",
        Opener::Office => "office",
        Opener::Teams => "teams",
    }
}
