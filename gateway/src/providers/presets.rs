//! Endpoint templates and issuer rules of the presets: Entra ID, Google, GitHub, and `dev`.

use url::Url;

use super::{Endpoints, IssuerRule, UserSource};

/// Microsoft's "consumers" tenant: issuer tenant of personal accounts.
pub const ENTRA_CONSUMERS_TID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// Microsoft's public-cloud authority, the default of `providers.*.authority`.
pub const ENTRA_LOGIN: &str = "https://login.microsoftonline.com";

fn url(text: &str) -> Option<Url> {
    Url::parse(text).ok()
}

/// Microsoft identity platform v2.0 at `authority` (the public cloud, a sovereign cloud, or a
/// local stand-in) for `tenant` (`common`, `organizations`, `consumers`, a tenant id or domain).
pub fn entra(authority: &str, tenant: &str) -> Option<Endpoints> {
    let authority = authority.trim_end_matches('/');
    Some(Endpoints {
        authorization: url(&format!("{authority}/{tenant}/oauth2/v2.0/authorize"))?,
        token: url(&format!("{authority}/{tenant}/oauth2/v2.0/token"))?,
        userinfo: None,
        jwks: url(&format!("{authority}/{tenant}/discovery/v2.0/keys")),
        revocation: None,
        issuer: IssuerRule::Entra { authority: authority.to_owned(), tenant: tenant.to_owned() },
        user: UserSource::IdToken,
    })
}

/// True when `iss` is the v2.0 issuer of the token's own tenant and that tenant fits `tenant`.
/// Multi-tenant apps see `https://login.microsoftonline.com/{tid}/v2.0` with the user's `tid`.
pub fn entra_issuer_ok(authority: &str, tenant: &str, iss: &str, tid: Option<&str>) -> bool {
    let Some(tid) = tid else { return false };
    if iss != format!("{authority}/{tid}/v2.0") {
        return false;
    }
    match tenant {
        "common" => true,
        "organizations" => tid != ENTRA_CONSUMERS_TID,
        "consumers" => tid == ENTRA_CONSUMERS_TID,
        // A tenant id must match; a tenant domain name cannot be mapped to its id offline,
        // so the token's own tenant is accepted (the client id still pins the app registration).
        specific if specific.contains('.') => true,
        specific => specific.eq_ignore_ascii_case(tid),
    }
}

/// Google (OIDC).
pub fn google() -> Option<Endpoints> {
    Some(Endpoints {
        authorization: url("https://accounts.google.com/o/oauth2/v2/auth")?,
        token: url("https://oauth2.googleapis.com/token")?,
        userinfo: url("https://openidconnect.googleapis.com/v1/userinfo"),
        jwks: url("https://www.googleapis.com/oauth2/v3/certs"),
        revocation: url("https://oauth2.googleapis.com/revoke"),
        issuer: IssuerRule::OneOf(vec!["https://accounts.google.com".into(), "accounts.google.com".into()]),
        user: UserSource::IdToken,
    })
}

/// GitHub (OAuth2 + the user API; no ID token).
pub fn github() -> Option<Endpoints> {
    Some(Endpoints {
        authorization: url("https://github.com/login/oauth/authorize")?,
        token: url("https://github.com/login/oauth/access_token")?,
        userinfo: url("https://api.github.com/user"),
        jwks: None,
        revocation: None,
        issuer: IssuerRule::None,
        user: UserSource::GitHub,
    })
}

/// The built-in `dev` provider under the gateway's own origin.
pub fn dev(public_origin: &str) -> Option<Endpoints> {
    let base = format!("{public_origin}{}", crate::providers::dev::DEV_PREFIX);
    Some(Endpoints {
        authorization: url(&format!("{base}/authorize"))?,
        token: url(&format!("{base}/token"))?,
        userinfo: None,
        jwks: url(&format!("{base}/jwks")),
        revocation: None,
        issuer: IssuerRule::OneOf(vec![base]),
        user: UserSource::IdToken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn entra_issuer_rules_follow_the_tenant_kind() {
        let iss = format!("{ENTRA_LOGIN}/{TID}/v2.0");
        assert!(entra_issuer_ok(ENTRA_LOGIN, "common", &iss, Some(TID)));
        assert!(entra_issuer_ok(ENTRA_LOGIN, "organizations", &iss, Some(TID)));
        assert!(!entra_issuer_ok(ENTRA_LOGIN, "consumers", &iss, Some(TID)));
        assert!(entra_issuer_ok(ENTRA_LOGIN, TID, &iss, Some(TID)));
        assert!(!entra_issuer_ok(ENTRA_LOGIN, "00000000-0000-0000-0000-000000000000", &iss, Some(TID)));
        // iss and tid must agree
        assert!(!entra_issuer_ok(ENTRA_LOGIN, "common", &iss, Some(ENTRA_CONSUMERS_TID)));
        assert!(!entra_issuer_ok(ENTRA_LOGIN, "common", "https://evil.example/v2.0", Some(TID)));
    }
}
