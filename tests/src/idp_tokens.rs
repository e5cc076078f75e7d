//! The token side of the test IdP: `/token`, `/userinfo`, `/revoke` and ID-token signing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{
    empty, json_response, oauth_error, text_response, Grant, IdTokenFault, Knobs, RespBody, Shared, TestUser,
    TokenBody, ACCESS_TOKEN_TTL_SECS, CLIENT_ID, CLIENT_SECRET, ID_TOKEN_TTL_SECS, KID,
};

/// Largest form body read from `/token` and `/revoke`.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Chunk of padding streamed by [`TestIdp::token_body_huge`](super::TestIdp::token_body_huge).
static PADDING: [u8; 64 * 1024] = [b'A'; 64 * 1024];
/// The signing key (PKCS#1 DER) and its public half; see `tests/fixtures/keys/README.md`.
const RSA_A_DER: &[u8] = include_bytes!("../fixtures/keys/rsa-a.der");
const RSA_A_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/keys/rsa-a.pub.pem");
/// A second RSA key, not in the JWKS: signatures by it must be refused.
const RSA_B_DER: &[u8] = include_bytes!("../fixtures/keys/rsa-b.der");

/// `POST /token`: the knobs first, then client authentication and the grant (RFC 6749 §4.1.3, §6).
pub(super) async fn token(shared: &Shared, req: Request<Incoming>) -> Response<RespBody> {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let knobs = shared.knobs().clone();
    if !knobs.token_delay.is_zero() {
        tokio::time::sleep(knobs.token_delay).await;
    }
    if let Some(status) = knobs.token_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let error = match status.as_u16() {
            401 => "invalid_client",
            503 => "temporarily_unavailable",
            400..=499 => "invalid_grant",
            _ => "server_error",
        };
        return oauth_error(status, error, "the test IdP was told to fail");
    }
    match knobs.token_body {
        TokenBody::Normal => {}
        TokenBody::Garbage => {
            let mut resp = text_response(StatusCode::OK, "<html><body>this is not a token response</body></html>\n");
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return resp;
        }
        TokenBody::Huge(bytes) => return huge_token_response(bytes),
    }
    let (parts, body) = req.into_parts();
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(resp) => return resp,
    };
    if let Err(description) = authenticate_client(&parts.headers, &form) {
        return invalid_client(description);
    }
    let (grant, refreshed) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => (redeem_code(shared, &form), None),
        Some("refresh_token") => {
            let token = form.get("refresh_token");
            let grant = token.and_then(|token| shared.records().refresh_tokens.get(token).cloned());
            (grant.ok_or("unknown or revoked refresh_token"), token)
        }
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    };
    match grant {
        Ok(grant) => issue_tokens(shared, &grant, &knobs, refreshed),
        Err(description) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description),
    }
}

/// Spends the code (single use, even when a later check fails) and checks `redirect_uri` and PKCE.
fn redeem_code(shared: &Shared, form: &HashMap<String, String>) -> Result<Grant, &'static str> {
    let code = form.get("code").ok_or("code is required")?;
    let grant = shared.records().codes.remove(code).ok_or("unknown or already used code")?;
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return Err("redirect_uri does not match the authorization request");
    }
    let verifier = form.get("code_verifier").ok_or("code_verifier is required")?;
    if !(43..=128).contains(&verifier.len()) || pkce_challenge(verifier) != grant.code_challenge {
        return Err("code_verifier does not match code_challenge");
    }
    Ok(grant)
}

/// RFC 7636 §4.2 S256: `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`.
fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// A token response for `grant`; a refresh keeps its refresh token (no rotation) and the
/// original `nonce` (OpenID Connect Core §12.2).
fn issue_tokens(shared: &Shared, grant: &Grant, knobs: &Knobs, refreshed: Option<&String>) -> Response<RespBody> {
    let access_token = shared.random("at");
    let refresh_token = refreshed.cloned().unwrap_or_else(|| shared.random("rt"));
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL_SECS,
        "refresh_token": refresh_token,
    });
    if let Some(scope) = &grant.scope {
        body["scope"] = json!(scope);
    }
    let mut secrets = vec![access_token.clone()];
    if refreshed.is_none() {
        secrets.push(refresh_token.clone());
    }
    if !knobs.omit_id_token {
        match id_token(&shared.issuer, grant, knobs.id_token_fault, &knobs.extra_claims) {
            Ok(id_token) => {
                body["id_token"] = json!(id_token);
                secrets.push(id_token);
            }
            Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &format!("{e:#}")),
        }
    }
    let mut records = shared.records();
    records.issued_secrets.extend(secrets);
    records.issued_access_tokens.push(access_token.clone());
    records.access_tokens.insert(access_token, grant.clone());
    records.refresh_tokens.insert(refresh_token, grant.clone());
    drop(records);
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An ID token for `grant` (OpenID Connect Core §2), spoiled as `fault` says.
fn id_token(
    issuer: &str,
    grant: &Grant,
    fault: IdTokenFault,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut claims = TestUser::for_login(&grant.login).claims();
    for (name, value) in extra {
        claims[name] = value.clone();
    }
    claims["iss"] = json!(issuer);
    claims["aud"] = json!(CLIENT_ID);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + ID_TOKEN_TTL_SECS);
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    match fault {
        IdTokenFault::WrongIssuer => claims["iss"] = json!("https://not-the-issuer.invalid"),
        IdTokenFault::WrongAudience => claims["aud"] = json!("some-other-client"),
        IdTokenFault::WrongNonce => claims["nonce"] = json!("not-the-nonce-that-was-sent"),
        IdTokenFault::Expired => {
            claims["iat"] = json!(now.saturating_sub(900));
            claims["exp"] = json!(now.saturating_sub(600));
        }
        _ => {}
    }
    let (alg, key, kid) = match fault {
        IdTokenFault::AlgNone => {
            let header = json!({"alg": "none", "typ": "JWT", "kid": KID});
            let encode = |v: &Value| serde_json::to_vec(v).map(|json| URL_SAFE_NO_PAD.encode(json));
            return Ok(format!("{}.{}.", encode(&header)?, encode(&claims)?));
        }
        IdTokenFault::WrongSignature => (Algorithm::RS256, EncodingKey::from_rsa_der(RSA_B_DER), KID),
        IdTokenFault::Hs256WithPublicKey => (Algorithm::HS256, EncodingKey::from_secret(RSA_A_PUBLIC_PEM), KID),
        IdTokenFault::UnknownKid => (Algorithm::RS256, EncodingKey::from_rsa_der(RSA_A_DER), "unknown-kid"),
        _ => (Algorithm::RS256, EncodingKey::from_rsa_der(RSA_A_DER), KID),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).context("cannot sign the ID token")
}

/// `GET /userinfo` (OpenID Connect Core §5.3) with an RFC 6750 Bearer token issued here.
pub(super) fn userinfo(shared: &Shared, headers: &HeaderMap) -> Response<RespBody> {
    shared.userinfo_requests.fetch_add(1, Ordering::SeqCst);
    let forced = shared.knobs().userinfo_status;
    if let Some(status) = forced {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::UNAUTHORIZED {
            return invalid_token();
        }
        return oauth_error(status, "temporarily_unavailable", "the test IdP was told to fail");
    }
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let grant = token.and_then(|token| shared.records().access_tokens.get(token).cloned());
    match grant {
        Some(grant) => json_response(StatusCode::OK, &TestUser::for_login(&grant.login).claims()),
        None => invalid_token(),
    }
}

/// `POST /revoke` (RFC 7009 §2): records the token and stops accepting it; 200 even if unknown.
pub(super) async fn revoke(shared: &Shared, req: Request<Incoming>) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(resp) => return resp,
    };
    if let Err(description) = authenticate_client(&parts.headers, &form) {
        return invalid_client(description);
    }
    let Some(token) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let mut records = shared.records();
    records.access_tokens.remove(token);
    records.refresh_tokens.remove(token);
    records.revoked.push(token.clone());
    drop(records);
    Response::new(empty())
}

/// An `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`], each name once
/// (RFC 6749 §3.2); otherwise the `invalid_request` answer.
async fn read_form(body: Incoming) -> Result<HashMap<String, String>, Response<RespBody>> {
    let bad = |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description);
    let bytes = match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(bad("the form body is unreadable or too large")),
    };
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(&bytes).into_owned() {
        if form.insert(name, value).is_some() {
            return Err(bad("a parameter appears more than once"));
        }
    }
    Ok(form)
}

/// RFC 6749 §2.3.1: client_secret_basic (id and secret form-urlencoded, then Base64) or
/// client_secret_post, not both.
fn authenticate_client(headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(), &'static str> {
    let (id, secret) = match headers.get(AUTHORIZATION) {
        Some(value) => {
            if form.contains_key("client_secret") {
                return Err("more than one client authentication method");
            }
            let credentials = value
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
                .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or("Authorization is not valid Basic credentials")?;
            let (id, secret) = credentials.split_once(':').ok_or("Basic credentials without ':'")?;
            (form_decode(id), form_decode(secret))
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => return Err("client authentication is required"),
        },
    };
    if id == CLIENT_ID && secret == CLIENT_SECRET {
        Ok(())
    } else {
        Err("unknown client or wrong secret")
    }
}

/// One `application/x-www-form-urlencoded` value decoded (`+` is a space).
fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// 200 with a JSON token response of `bytes` bytes, generated chunk by chunk.
fn huge_token_response(bytes: usize) -> Response<RespBody> {
    const HEAD: &[u8] = br#"{"access_token":""#;
    const TAIL: &[u8] = br#"","token_type":"Bearer","expires_in":3600}"#;
    let padding = bytes.saturating_sub(HEAD.len() + TAIL.len());
    // States: 0 = head next, 1 = padding (with `left` bytes), 2 = tail next, 3 = done.
    let chunks = futures_util::stream::unfold((0u8, padding), |(stage, left)| async move {
        let (chunk, next) = match stage {
            0 => (Bytes::from_static(HEAD), (1, left)),
            1 if left > 0 => {
                let n = left.min(PADDING.len());
                (Bytes::from_static(&PADDING[..n]), (1, left - n))
            }
            1 | 2 => (Bytes::from_static(TAIL), (3, 0)),
            _ => return None,
        };
        Some((Ok::<_, Infallible>(Frame::data(chunk)), next))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn invalid_client(description: &str) -> Response<RespBody> {
    let mut resp = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"test-idp\""));
    resp
}

fn invalid_token() -> Response<RespBody> {
    let mut resp = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "unknown, revoked or missing access token");
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
        assert_eq!(form_decode(&encoded), CLIENT_SECRET);
        assert_eq!(form_decode("a+b"), "a b");
    }
}
