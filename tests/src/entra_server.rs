//! The HTTP side of the Entra stand-in: routing by tenant segment, OpenID metadata, JWKS, and the
//! on-behalf-of exchange with its checks in Entra's order and its errors worded as Entra words them
//! (AADSTS text, trace and correlation ids, time).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{
    unix_now, v1_issuer, CodeGrant, OboMode, RespBody, Shared, Signer, TokenForm, TokenSpec, TokenVersion,
    ASSERTION_SKEW_SECS, CLIENT_APP_NAME, DEFAULT_SCOPE, GRAPH, MAX_OBO_DELAY, MULTI_TENANT, OBO_EXPIRES_IN,
    OBO_GRANT_TYPE,
};

/// Graph's application id, which AADSTS50076 names as the resource.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Scopes that name no resource (OpenID Connect and refresh tokens).
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// Largest form body the token endpoint reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Accepts until told to stop, then drops the listener and aborts every connection task.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    crate::http_serve::serve(listener, stop, || {
        let shared = Arc::clone(&shared);
        service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            async move {
                let unreachable = shared.state().knobs.obo_mode == OboMode::Unreachable;
                if unreachable && req.method() == Method::POST && req.uri().path().ends_with("/oauth2/v2.0/token") {
                    shared.obo_requests.fetch_add(1, Ordering::SeqCst);
                    // A service error makes hyper close the connection without an answer.
                    return Err(std::io::Error::other("unreachable (Entra stand-in knob)"));
                }
                Ok(handle(req, &shared).await)
            }
        })
    })
    .await;
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<RespBody> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let tenant = segments.first().copied().unwrap_or_default();
    if tenant.is_empty() {
        return not_found();
    }
    match (req.method(), &segments[1..]) {
        (&Method::GET, ["v2.0", ".well-known", "openid-configuration"]) => metadata(shared, tenant),
        (&Method::GET, ["discovery", "v2.0", "keys"]) => jwks(shared, Some(tenant)),
        (&Method::GET, ["discovery", "keys"]) => jwks(shared, None),
        (&Method::GET, ["oauth2", "v2.0", "authorize"]) => authorize(shared, tenant, &req),
        (&Method::POST, ["oauth2", "v2.0", "token"]) => token(shared, tenant, req).await,
        _ => not_found(),
    }
}

/// The v2.0 OpenID metadata of `tenant`, as Entra serves it (minus its cloud-instance extras).
fn metadata(shared: &Shared, tenant: &str) -> Response<RespBody> {
    let base = format!("{}/{tenant}", shared.authority);
    json_response(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": shared.issuer(tenant),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{GRAPH}/oidc/userinfo"),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                                 "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "tenant_region_scope": "EU",
            "msgraph_host": "graph.microsoft.com",
        }),
    )
}

/// The published keys; the v2 path (`tenant` given) adds each key's `issuer`, as Entra does.
fn jwks(shared: &Shared, tenant: Option<&str>) -> Response<RespBody> {
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let published = shared.state().published.clone();
    let keys: Vec<Value> = published
        .iter()
        .map(|key| {
            let kid = key.kid();
            let mut jwk = json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": key.modulus(), "e": "AQAB"});
            if let Some(tenant) = tenant {
                jwk["issuer"] = json!(shared.issuer(tenant));
            }
            jwk
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "keys": keys }))
}

/// An Entra error: the OAuth `error`, the AADSTS number and its text.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
    suberror: Option<&'static str>,
    claims: Option<String>,
}

fn refuse(status: StatusCode, error: &'static str, code: u32, message: String) -> Refusal {
    Refusal { status, error, code, message, suberror: None, claims: None }
}

fn invalid_grant(code: u32, message: String) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, "invalid_grant", code, message)
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the interactive sign-in, approved at once for the
/// default user (no login page), as a popup sees it: 302 back with `code` and `state`.
fn authorize(shared: &Shared, tenant: &str, req: &Request<Incoming>) -> Response<RespBody> {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let (client_id, redirect_uri) = (field("client_id"), field("redirect_uri"));
    if client_id != shared.state().knobs.client_id
        || redirect_uri.is_empty()
        || field("code_challenge_method") != "S256"
    {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_request"}));
    }
    let code = format!("1.A{}", shared.opaque());
    let grant = CodeGrant {
        tenant: tenant.to_owned(),
        client_id,
        redirect_uri: redirect_uri.clone(),
        code_challenge: field("code_challenge"),
        nonce: query.get("nonce").cloned(),
    };
    shared.state().codes.insert(code.clone(), grant);
    let mut location = redirect_uri;
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &field("state"))
            .finish(),
    );
    let mut resp = Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// `grant_type=authorization_code`: the code (single use), its redirect URI and PKCE verifier,
/// then an access token for the app's own API (`scp` `access_as_user`) and an ID token.
fn code_grant(shared: &Shared, tenant: &str, headers: &HeaderMap, form: &TokenForm) -> Result<Value, Refusal> {
    let client_id = authenticate_client(shared, tenant, headers, form)?;
    let code = required(form, "code")?;
    let grant = shared.state().codes.remove(code);
    let bad_code = || {
        invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired or was already used.".to_owned(),
        )
    };
    let grant = grant.filter(|g| g.client_id == client_id && g.tenant == tenant).ok_or_else(bad_code)?;
    if form.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(invalid_grant(
            50148,
            "The redirect URI does not match the one of the authorization request.".to_owned(),
        ));
    }
    let verifier = required(form, "code_verifier")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    if base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.code_challenge {
        return Err(invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.".to_owned(),
        ));
    }
    let server_error = |e: anyhow::Error| {
        refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", 90041, format!("Signing failed: {e:#}"))
    };
    let spec = TokenSpec::new(tenant, &client_id);
    let access_token = shared.sign(&shared.claims(&spec), Signer::Current, TokenVersion::V2).map_err(server_error)?;
    let now = unix_now();
    let id_claims = json!({
        "aud": client_id, "iss": shared.issuer(tenant), "iat": now, "nbf": now, "exp": now + 3600,
        "tid": tenant, "oid": spec.oid, "sub": spec.oid, "name": spec.name,
        "preferred_username": spec.username, "nonce": grant.nonce, "ver": "2.0",
    });
    let id_token = shared.sign(&id_claims, Signer::Current, TokenVersion::V2).map_err(server_error)?;
    shared.state().issued_interactive.push(access_token.clone());
    Ok(json!({
        "token_type": "Bearer", "scope": format!("api://{client_id}/{DEFAULT_SCOPE}"), "expires_in": 3599,
        "ext_expires_in": 3599, "access_token": access_token, "id_token": id_token,
    }))
}

/// `POST /{tenant}/oauth2/v2.0/token`: the on-behalf-of exchange, or the code of an interactive sign-in.
async fn token(shared: &Shared, tenant: &str, req: Request<Incoming>) -> Response<RespBody> {
    shared.obo_requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    // Entra echoes the caller's `client-request-id` as the correlation id.
    let correlation = parts.headers.get("client-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let correlation = correlation.unwrap_or_else(|| shared.guid());
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(refusal) => return entra_error(shared, &correlation, refusal),
    };
    let mode = {
        let mut state = shared.state();
        state.last_obo = Some(form.clone());
        state.knobs.obo_mode.clone()
    };
    if let OboMode::Slow(delay) = mode {
        tokio::time::sleep(delay.min(MAX_OBO_DELAY)).await;
    }
    if mode == OboMode::Down {
        let message = "A transient error has occurred. Please try again.".to_owned();
        let refusal = refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", 90033, message);
        return entra_error(shared, &correlation, refusal);
    }
    let answer = if form.get("grant_type") == Some("authorization_code") {
        code_grant(shared, tenant, &parts.headers, &form)
    } else {
        exchange(shared, tenant, &parts.headers, &form, &mode)
    };
    match answer {
        Ok(body) => {
            let mut resp = json_response(StatusCode::OK, &body);
            resp.headers_mut().insert(PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(refusal) => entra_error(shared, &correlation, refusal),
    }
}

/// The checks in Entra's order (grant, client, request, assertion), the mode, then the token answer.
fn exchange(
    shared: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    form: &TokenForm,
    mode: &OboMode,
) -> Result<Value, Refusal> {
    let grant_type = required(form, "grant_type")?;
    if grant_type != OBO_GRANT_TYPE {
        let message = format!("The app requested an unsupported grant type '{grant_type}'.");
        return Err(refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type", 70003, message));
    }
    let client_id = authenticate_client(shared, tenant, headers, form)?;
    for (name, wanted) in [("requested_token_use", Some("on_behalf_of")), ("scope", None)] {
        let value = required(form, name)?;
        if value.trim().is_empty() || wanted.is_some_and(|w| w != value) {
            let message = format!("The provided value for the input parameter '{name}' is not valid.");
            return Err(refuse(StatusCode::BAD_REQUEST, "invalid_request", 70011, message));
        }
    }
    let user = verify_assertion(shared, tenant, required(form, "assertion")?, &client_id)?;
    let grant = Grant::from_scope(required(form, "scope")?)?;
    match mode {
        OboMode::ConsentRequired => {
            let message = format!(
                "The user or administrator has not consented to use the application with ID '{client_id}' named \
                 '{CLIENT_APP_NAME}'. Send an interactive authorization request for this user and resource."
            );
            Err(Refusal { suberror: Some("consent_required"), ..invalid_grant(65001, message) })
        }
        OboMode::InteractionRequired { claims } => {
            let resource = if grant.resource == GRAPH { GRAPH_APP_ID } else { grant.resource.as_str() };
            let message = format!(
                "Due to a configuration change made by your administrator, or because you moved to a new location, \
                 you must use multi-factor authentication to access '{resource}'."
            );
            let refusal = refuse(StatusCode::BAD_REQUEST, "interaction_required", 50076, message);
            Err(Refusal { suberror: Some("basic_action"), claims: Some(claims.clone()), ..refusal })
        }
        _ => issue(shared, &user, &client_id, &grant),
    }
}

/// RFC 6749 §2.3.1: `client_secret` in the form, or Basic credentials (form-urlencoded, then Base64).
fn authenticate_client(
    shared: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<String, Refusal> {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, secret)| (form_decode(id), form_decode(secret))));
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (required(form, "client_id")?.to_owned(), form.get("client_secret").map(str::to_owned)),
    };
    let knobs = shared.state().knobs.clone();
    if id != knobs.client_id {
        let message = format!(
            "Application with identifier '{id}' was not found in the directory '{tenant}'. This can happen if the \
             application has not been installed by the administrator of the tenant or consented to by any user in \
             the tenant. You may have sent your authentication request to the wrong tenant."
        );
        return Err(refuse(StatusCode::BAD_REQUEST, "unauthorized_client", 700016, message));
    }
    match secret {
        None => {
            let message =
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
            Err(refuse(StatusCode::UNAUTHORIZED, "invalid_client", 7000218, message.to_owned()))
        }
        Some(secret) if secret != knobs.client_secret => {
            let message = format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
                 value, not the client secret ID, for a secret added to app '{id}'."
            );
            Err(refuse(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, message))
        }
        Some(_) => Ok(id),
    }
}

/// The assertion's claims, if a published key signed it (RS256), it is within its lifetime
/// (± [`ASSERTION_SKEW_SECS`]), its issuer is its tenant's (v1 or v2), that tenant is the path's
/// (unless multi-tenant), and it is for `client_id` (the id itself or an `api://…/{id}` URI).
fn verify_assertion(shared: &Shared, tenant: &str, assertion: &str, client_id: &str) -> Result<Value, Refusal> {
    let malformed = || invalid_grant(50027, "JWT token is invalid or malformed.".to_owned());
    let signature =
        |reason: String| invalid_grant(50013, format!("Assertion failed signature validation. [Reason - {reason}]"));
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    let kid = header.kid.unwrap_or_default();
    let published = shared.state().published.clone();
    let key = published.iter().find(|k| k.kid() == kid);
    let Some(key) = key.filter(|_| header.alg == Algorithm::RS256) else {
        return Err(signature(format!("The key was not found., Thumbprint of key used by client: '{kid}'")));
    };
    let decoding = DecodingKey::from_rsa_components(key.modulus(), "AQAB").map_err(|_| malformed())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = ASSERTION_SKEW_SECS;
    let claims = match jsonwebtoken::decode::<Value>(assertion, &decoding, &validation) {
        Ok(data) => data.claims,
        Err(e) => match e.kind() {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                let message = format!(
                    "Assertion is not within its valid time range. Ensure that the access token is not expired \
                     before using it for user assertion, or request a new token. Current time: {}.",
                    entra_timestamp(unix_now())
                );
                return Err(invalid_grant(500133, message));
            }
            ErrorKind::InvalidSignature => {
                let reason = "The provided signature value did not match the expected signature value.";
                return Err(signature(format!("{reason}, Thumbprint of key used by client: '{kid}'")));
            }
            _ => return Err(malformed()),
        },
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    let tid = text("tid");
    if tid.is_empty() || text("oid").is_empty() {
        return Err(malformed());
    }
    if text("iss") != v1_issuer(tid) && text("iss") != shared.issuer(tid) {
        return Err(signature(format!("The issuer '{}' is not tenant '{tid}''s issuer.", text("iss"))));
    }
    if !MULTI_TENANT.contains(&tenant) && tid != tenant {
        return Err(signature(format!("The assertion was issued in tenant '{tid}', not in '{tenant}'.")));
    }
    let aud = text("aud");
    let app_uri =
        aud.strip_prefix("api://").is_some_and(|rest| rest == client_id || rest.ends_with(&format!("/{client_id}")));
    if aud != client_id && !app_uri {
        let message = format!(
            "Assertion audience does not match the Client app presenting the assertion. The audience in the \
             assertion was '{aud}' and the expected audience is '{client_id}' or one of the Application Uris of \
             this application with App ID '{client_id}'({CLIENT_APP_NAME})."
        );
        return Err(invalid_grant(500131, message));
    }
    Ok(claims)
}

/// What an OBO request's `scope` asks for: one resource, its permissions, and a refresh token or not.
#[derive(Debug)]
struct Grant {
    resource: String,
    permissions: Vec<String>,
    offline: bool,
}

impl Grant {
    /// `https://graph.microsoft.com/User.Read offline_access` → Graph, `User.Read`, offline; a
    /// scope without a resource is Graph's; `{resource}/.default` grants `User.Read` on Graph and
    /// [`DEFAULT_SCOPE`] elsewhere. Scopes of two resources are refused (AADSTS28000).
    fn from_scope(scope: &str) -> Result<Self, Refusal> {
        let mut grant = Grant { resource: String::new(), permissions: Vec::new(), offline: false };
        for item in scope.split_whitespace() {
            if OIDC_SCOPES.contains(&item) {
                grant.offline |= item == "offline_access";
                continue;
            }
            let (resource, permission) = match item.rsplit_once('/') {
                Some((resource, permission)) if resource.contains("://") => (resource, permission),
                _ => (GRAPH, item),
            };
            if !grant.resource.is_empty() && grant.resource != resource {
                let message = format!(
                    "Provided value for the input parameter scope '{scope}' is not valid because it contains more \
                     than one resource. Scope {scope} is not valid."
                );
                return Err(refuse(StatusCode::BAD_REQUEST, "invalid_scope", 28000, message));
            }
            grant.resource = resource.to_owned();
            grant.permissions.push(permission.to_owned());
        }
        if grant.resource.is_empty() {
            grant.resource = GRAPH.to_owned();
        }
        let default = if grant.resource == GRAPH { "User.Read" } else { DEFAULT_SCOPE };
        grant.permissions.retain(|p| p != ".default");
        if grant.permissions.is_empty() {
            grant.permissions.push(default.to_owned());
        }
        Ok(grant)
    }
}

/// The token answer: a v1 access token for the resource, the user's `oid`/`tid`/name, `appid` =
/// the middle tier, signed by the current key; a refresh token only when `offline_access` was asked.
fn issue(shared: &Shared, user: &Value, client_id: &str, grant: &Grant) -> Result<Value, Refusal> {
    let text = |name: &str| user.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let username = [text("upn"), text("preferred_username"), text("unique_name")].into_iter().find(|u| !u.is_empty());
    let spec = TokenSpec {
        version: TokenVersion::V1,
        scp: Some(grant.permissions.join(" ")),
        oid: text("oid"),
        name: text("name"),
        username: username.unwrap_or_default(),
        app_id: client_id.to_owned(),
        expires_in: OBO_EXPIRES_IN,
        ..TokenSpec::new(&text("tid"), &grant.resource)
    };
    let server_error = |e: anyhow::Error| {
        refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", 90041, format!("Signing failed: {e:#}"))
    };
    let access_token = shared.sign(&shared.claims(&spec), Signer::Current, TokenVersion::V1).map_err(server_error)?;
    shared.state().issued_obo.push(access_token.clone());
    let scope: Vec<String> = grant.permissions.iter().map(|p| format!("{}/{p}", grant.resource)).collect();
    let mut body = json!({
        "token_type": "Bearer", "scope": scope.join(" "), "expires_in": OBO_EXPIRES_IN,
        "ext_expires_in": OBO_EXPIRES_IN, "access_token": access_token,
    });
    if grant.offline {
        body["refresh_token"] = json!(format!("1.A{}", shared.opaque()));
    }
    Ok(body)
}

/// A non-empty form field, or AADSTS900144.
fn required<'a>(form: &'a TokenForm, name: &str) -> Result<&'a str, Refusal> {
    form.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        let message = format!("The request body must contain the following parameter: '{name}'.");
        refuse(StatusCode::BAD_REQUEST, "invalid_request", 900144, message)
    })
}

/// An `application/x-www-form-urlencoded` body of at most 64 KiB, each name once (RFC 6749 §3.2).
async fn read_form(body: Incoming) -> Result<TokenForm, Refusal> {
    let bad = |message: String| refuse(StatusCode::BAD_REQUEST, "invalid_request", 90014, message);
    let bytes = match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(bad("The request body is unreadable or larger than 64 KiB.".to_owned())),
    };
    let mut fields = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(&bytes).into_owned() {
        if fields.contains_key(&name) {
            return Err(bad(format!("The request body contains the parameter '{name}' more than once.")));
        }
        fields.insert(name, value);
    }
    Ok(TokenForm(fields))
}

/// Entra's error body: the AADSTS text with trace, correlation and time appended, and the same
/// values as fields.
fn entra_error(shared: &Shared, correlation: &str, refusal: Refusal) -> Response<RespBody> {
    let trace = shared.guid();
    let timestamp = entra_timestamp(unix_now());
    let code = refusal.code;
    let description = format!(
        "AADSTS{code}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}",
        refusal.message
    );
    let mut body = json!({
        "error": refusal.error, "error_description": description, "error_codes": [code],
        "timestamp": timestamp, "trace_id": trace, "correlation_id": correlation,
        "error_uri": format!("{}/error?code={code}", shared.authority),
    });
    if let Some(suberror) = refusal.suberror {
        body["suberror"] = json!(suberror);
    }
    if let Some(claims) = refusal.claims {
        body["claims"] = json!(claims);
    }
    json_response(refusal.status, &body)
}

/// `2017-05-01 22:43:20Z`, the form of Entra's `timestamp` (proleptic Gregorian, UTC).
fn entra_timestamp(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Civil date from a day count (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// One `application/x-www-form-urlencoded` value decoded (`+` is a space).
fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn json_response(status: StatusCode, body: &Value) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    resp
}

fn not_found() -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"no such endpoint at the Entra stand-in")).boxed());
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
