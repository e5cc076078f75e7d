//! The Entra stand-in itself: metadata and JWKS shapes for any tenant, key rotation, minted v1 and
//! v2 tokens that verify against the JWKS (and attack tokens that do not), the on-behalf-of
//! exchange for two tenants at once, and each of its error shapes.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use gateway_tests::entra::{
    v1_issuer, EntraStandIn, OboMode, Signer, StandInKey, TokenSpec, CALLER_APP_ID, DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET, DEFAULT_OID, DEFAULT_USERNAME, GRAPH, NOT_BEFORE_OFFSET_SECS, OBO_GRANT_TYPE,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

const T1: &str = "11111111-1111-4111-8111-111111111111";
const T2: &str = "22222222-2222-4222-8222-222222222222";

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(gateway_tests::client::builder().timeout(Duration::from_secs(5)).build()?)
}

async fn json_of(resp: reqwest::Response) -> anyhow::Result<Value> {
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = http.get(url).send().await?;
    ensure!(resp.status() == 200, "GET {url}: {}", resp.status());
    json_of(resp).await
}

async fn jwks(entra: &EntraStandIn, tenant: &str) -> anyhow::Result<JwkSet> {
    Ok(serde_json::from_value(get_json(&http()?, &entra.jwks_url(tenant)).await?)?)
}

fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// The claims of `token` if a key of `jwks` verifies it as RS256 from `iss` for `aud`.
fn verify(token: &str, jwks: &JwkSet, iss: &str, aud: &str) -> anyhow::Result<Value> {
    let kid = jsonwebtoken::decode_header(token)?.kid.context("no kid")?;
    let jwk = jwks.find(&kid).with_context(|| format!("kid {kid} is not in the JWKS"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[iss]);
    validation.set_audience(&[aud]);
    Ok(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
}

/// A well-formed OBO form for the default client, with `changes` set (an empty value drops the field).
fn obo_form<'a>(assertion: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", OBO_GRANT_TYPE),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("assertion", assertion),
        ("scope", "https://graph.microsoft.com/User.Read offline_access"),
        ("requested_token_use", "on_behalf_of"),
    ];
    for (name, value) in changes {
        form.retain(|(n, _)| n != name);
        if !value.is_empty() {
            form.push((name, value));
        }
    }
    form
}

async fn post(url: &str, form: &[(&str, &str)]) -> anyhow::Result<(u16, Value)> {
    let resp = http()?.post(url).form(form).send().await?;
    Ok((resp.status().as_u16(), json_of(resp).await?))
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// One refused OBO request: the assertion, form changes, then status, `error`, AADSTS code and text.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str, u32, &'a str);

/// `body` is Entra's error shape for `code`, its description starting `AADSTS{code}: {text}`.
fn assert_entra_error(got: &(u16, Value), status: u16, error: &str, code: u32, text: &str) -> anyhow::Result<()> {
    let (got_status, body) = got;
    ensure!(*got_status == status && body["error"] == error, "wanted {status} {error}, got {got_status} {body}");
    ensure!(body["error_codes"] == json!([code]), "error_codes of {body}");
    let description = body["error_description"].as_str().context("no error_description")?;
    ensure!(description.starts_with(&format!("AADSTS{code}: {text}")), "description: {description}");
    let (trace, correlation) = (body["trace_id"].as_str().unwrap_or(""), body["correlation_id"].as_str().unwrap_or(""));
    ensure!(is_guid(trace) && is_guid(correlation), "ids of {body}");
    let timestamp = body["timestamp"].as_str().context("no timestamp")?;
    let shape: String = timestamp.chars().map(|c| if c.is_ascii_digit() { 'd' } else { c }).collect();
    ensure!(shape == "dddd-dd-dd dd:dd:ddZ", "timestamp {timestamp}");
    let tail = format!(" Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}");
    ensure!(description.ends_with(&tail), "description: {description}");
    ensure!(body["error_uri"].as_str().is_some_and(|u| u.ends_with(&format!("/error?code={code}"))), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_jwks_have_entra_shapes_for_any_tenant() -> anyhow::Result<()> {
    let entra = EntraStandIn::start().await?;
    let http = http()?;
    for tenant in [T1, T2] {
        let meta = get_json(&http, &entra.metadata_url(tenant)).await?;
        let base = format!("{}/{tenant}", entra.authority());
        ensure!(meta["issuer"] == format!("{base}/v2.0") && meta["issuer"] == entra.issuer(tenant), "{meta}");
        ensure!(meta["jwks_uri"] == format!("{base}/discovery/v2.0/keys"), "{meta}");
        ensure!(meta["token_endpoint"] == format!("{base}/oauth2/v2.0/token"), "{meta}");
        ensure!(meta["authorization_endpoint"] == format!("{base}/oauth2/v2.0/authorize"), "{meta}");
        ensure!(meta["id_token_signing_alg_values_supported"] == json!(["RS256"]), "{meta}");
        let keys = get_json(&http, meta["jwks_uri"].as_str().context("jwks_uri")?).await?;
        let [key] = keys["keys"].as_array().context("keys")?.as_slice() else { anyhow::bail!("one key: {keys}") };
        ensure!(key["kty"] == "RSA" && key["use"] == "sig" && key["e"] == "AQAB", "{key}");
        ensure!(key["kid"] == entra.signing_kid() && key["x5t"] == key["kid"], "{key}");
        ensure!(key["issuer"] == meta["issuer"] && key.get("alg").is_none(), "{key}");
        ensure!(key["n"].as_str().is_some_and(|n| n.len() > 300), "{key}");
        serde_json::from_value::<JwkSet>(keys)?;
    }
    let common = get_json(&http, &entra.metadata_url("common")).await?;
    ensure!(common["issuer"] == format!("{}/{{tenantid}}/v2.0", entra.authority()), "{common}");
    let v1_keys = get_json(&http, &format!("{}/{T1}/discovery/keys", entra.authority())).await?;
    ensure!(v1_keys["keys"][0]["kid"] == entra.signing_kid() && v1_keys["keys"][0].get("issuer").is_none());
    ensure!(entra.jwks_requests() == 3, "jwks requests: {}", entra.jwks_requests());
    ensure!(http.get(format!("{}/{T1}/nothing", entra.authority())).send().await?.status() == 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_publishes_the_next_key_then_switches_to_it() -> anyhow::Result<()> {
    let entra = EntraStandIn::start().await?;
    let (a, b) = (StandInKey::A.kid(), StandInKey::B.kid());
    let aud = DEFAULT_CLIENT_ID;
    let kids = |set: &JwkSet| set.keys.iter().filter_map(|k| k.common.key_id.clone()).collect::<Vec<_>>();
    let signed_by = |entra: &EntraStandIn| jsonwebtoken::decode_header(&entra.access_token(&TokenSpec::new(T1, aud)));
    ensure!(entra.signing_kid() == a && kids(&jwks(&entra, T1).await?) == [a.clone()]);

    entra.publish_next_key();
    let set = jwks(&entra, T1).await?;
    ensure!(kids(&set) == [a.clone(), b.clone()] && entra.published_kids() == kids(&set));
    ensure!(signed_by(&entra)?.kid == Some(a.clone()), "the current key still signs");
    let early = entra.access_token(&TokenSpec::new(T1, aud).signer(Signer::Key(StandInKey::B)));
    verify(&early, &set, &entra.issuer(T1), aud).context("a token of the published next key verifies")?;

    entra.rotate();
    let set = jwks(&entra, T1).await?;
    ensure!(entra.signing_kid() == b && kids(&set) == [b.clone(), a.clone()], "{:?}", kids(&set));
    let token = entra.access_token(&TokenSpec::new(T1, aud));
    ensure!(jsonwebtoken::decode_header(&token)?.kid == Some(b.clone()));
    verify(&token, &set, &entra.issuer(T1), aud)?;
    let old = entra.access_token(&TokenSpec::new(T1, aud).signer(Signer::Key(StandInKey::A)));
    verify(&old, &set, &entra.issuer(T1), aud).context("tokens of the old key verify until it retires")?;

    entra.retire_old_key();
    let set = jwks(&entra, T1).await?;
    ensure!(kids(&set) == std::slice::from_ref(&b));
    ensure!(verify(&old, &set, &entra.issuer(T1), aud).is_err(), "the retired key is gone");
    entra.publish_next_key();
    ensure!(entra.published_kids() == [b, a], "A comes back as the next key");
    ensure!(entra.jwks_requests() == 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_v1_and_v2_tokens_verify_against_the_jwks_and_attack_tokens_do_not() -> anyhow::Result<()> {
    let entra = EntraStandIn::start().await?;
    let aud = format!("api://localhost:3000/{DEFAULT_CLIENT_ID}");
    let set = jwks(&entra, T1).await?;

    let v2 = verify(&entra.access_token(&TokenSpec::new(T1, &aud)), &set, &entra.issuer(T1), &aud)?;
    ensure!(v2["ver"] == "2.0" && v2["tid"] == T1 && v2["oid"] == DEFAULT_OID && v2["scp"] == "access_as_user");
    ensure!(v2["preferred_username"] == DEFAULT_USERNAME && v2["azp"] == CALLER_APP_ID && v2.get("upn").is_none());
    let (nbf, exp) = (v2["nbf"].as_i64().context("nbf")?, v2["exp"].as_i64().context("exp")?);
    ensure!(v2["iat"] == nbf && (nbf - (now() + NOT_BEFORE_OFFSET_SECS)).abs() <= 5, "{v2}");
    ensure!((exp - (now() + 3600)).abs() <= 5, "{v2}");

    let v1_token = entra.access_token(&TokenSpec::new(T2, &aud).v1().scp("Files.Read User.Read"));
    ensure!(jsonwebtoken::decode_header(&v1_token)?.x5t == Some(entra.signing_kid()), "v1 headers carry x5t");
    let v1 = verify(&v1_token, &set, &v1_issuer(T2), &aud)?;
    ensure!(v1["ver"] == "1.0" && v1["tid"] == T2 && v1["iss"] == format!("https://sts.windows.net/{T2}/"));
    ensure!(v1["upn"] == DEFAULT_USERNAME && v1["unique_name"] == DEFAULT_USERNAME && v1["appid"] == CALLER_APP_ID);
    ensure!(v1["scp"] == "Files.Read User.Read" && v1.get("preferred_username").is_none(), "{v1}");

    let extra = json!({"roles": ["Admin"], "scp": null, "name": "Grace Hopper"});
    let custom = entra.access_token(&TokenSpec::new(T1, &aud).extra(extra));
    let custom = verify(&custom, &set, &entra.issuer(T1), &aud)?;
    ensure!(custom["roles"] == json!(["Admin"]) && custom.get("scp").is_none() && custom["name"] == "Grace Hopper");

    let expired = entra.access_token(&TokenSpec::new(T1, &aud).expires_in(-600));
    let err = verify(&expired, &set, &entra.issuer(T1), &aud).unwrap_err();
    ensure!(format!("{err:#}").contains("ExpiredSignature"), "{err:#}");
    for signer in [Signer::Unpublished, Signer::ForgedKid, Signer::AlgNone, Signer::Hs256WithPublicKey] {
        let token = entra.access_token(&TokenSpec::new(T1, &aud).signer(signer));
        ensure!(verify(&token, &set, &entra.issuer(T1), &aud).is_err(), "{signer:?} verified");
    }
    let forged = entra.access_token(&TokenSpec::new(T1, &aud).signer(Signer::ForgedKid));
    ensure!(
        jsonwebtoken::decode_header(&forged)?.kid == Some(entra.signing_kid()),
        "the forged token names the real kid"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obo_exchanges_user_tokens_of_two_tenants_for_graph_tokens() -> anyhow::Result<()> {
    let entra = EntraStandIn::start().await?;
    let (client_id, secret) = ("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "s3cret~With.dots_and-dashes");
    entra.set_client(client_id, secret);
    let set = jwks(&entra, T1).await?;

    let assertion = entra.access_token(&TokenSpec::new(T1, &format!("api://localhost:3000/{client_id}")));
    let form = obo_form(&assertion, &[("client_id", client_id), ("client_secret", secret)]);
    let (status, body) = post(&entra.token_url(T1), &form).await?;
    ensure!(status == 200 && body["token_type"] == "Bearer", "{status} {body}");
    ensure!(body["scope"] == "https://graph.microsoft.com/User.Read" && body["refresh_token"].is_string(), "{body}");
    ensure!(body["expires_in"] == 3599 && body["ext_expires_in"] == 3599, "{body}");
    let access_token = body["access_token"].as_str().context("access_token")?;
    let graph = verify(access_token, &set, &v1_issuer(T1), GRAPH)?;
    ensure!(graph["oid"] == DEFAULT_OID && graph["tid"] == T1 && graph["scp"] == "User.Read", "{graph}");
    ensure!(graph["appid"] == client_id && graph["upn"] == DEFAULT_USERNAME && graph["ver"] == "1.0", "{graph}");
    let last = entra.last_obo_request().context("no request recorded")?;
    ensure!(last.get("requested_token_use") == Some("on_behalf_of") && last.get("assertion") == Some(&assertion));
    let shown = format!("{last:?}");
    ensure!(!shown.contains(secret) && !shown.contains(&assertion) && shown.contains("on_behalf_of"), "{shown}");

    // The second tenant at the same time, the app's bare id as audience, Basic client credentials.
    let assertion = entra.access_token(&TokenSpec::new(T2, client_id).v1());
    let form = obo_form(&assertion, &[("client_id", ""), ("client_secret", ""), ("scope", "User.Read")]);
    let resp = http()?.post(entra.token_url(T2)).basic_auth(client_id, Some(secret)).form(&form).send().await?;
    let (status, body): (u16, Value) = (resp.status().as_u16(), json_of(resp).await?);
    ensure!(status == 200 && body.get("refresh_token").is_none(), "{status} {body}");
    let graph = verify(body["access_token"].as_str().context("access_token")?, &set, &v1_issuer(T2), GRAPH)?;
    ensure!(graph["tid"] == T2 && graph["oid"] == DEFAULT_OID, "{graph}");

    let downstream = obo_form(
        &assertion,
        &[("client_id", client_id), ("client_secret", secret), ("scope", "api://downstream/.default")],
    );
    let (status, body) = post(&entra.token_url(T2), &downstream).await?;
    ensure!(status == 200 && body["scope"] == "api://downstream/access_as_user", "{status} {body}");
    ensure!(entra.obo_requests() == 3 && entra.issued_obo_tokens().len() == 3);
    ensure!(entra.issued_obo_tokens()[0] == access_token);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obo_errors_are_worded_as_entra_words_them() -> anyhow::Result<()> {
    let entra = EntraStandIn::start().await?;
    let url = entra.token_url(T1);
    let aud = format!("api://localhost:3000/{DEFAULT_CLIENT_ID}");
    let assertion = entra.access_token(&TokenSpec::new(T1, &aud));

    entra.obo_mode(OboMode::ConsentRequired);
    let got = post(&url, &obo_form(&assertion, &[])).await?;
    let text =
        format!("The user or administrator has not consented to use the application with ID '{DEFAULT_CLIENT_ID}'");
    assert_entra_error(&got, 400, "invalid_grant", 65001, &text)?;
    ensure!(got.1["suberror"] == "consent_required", "{}", got.1);

    let claims =
        r#"{"access_token":{"capolids":{"essential":true,"values":["c1a9d7f2-0000-4000-8000-000000000001"]}}}"#;
    entra.obo_mode(OboMode::InteractionRequired { claims: claims.to_owned() });
    let got = post(&url, &obo_form(&assertion, &[])).await?;
    assert_entra_error(
        &got,
        400,
        "interaction_required",
        50076,
        "Due to a configuration change made by your administrator",
    )?;
    ensure!(got.1["suberror"] == "basic_action" && got.1["claims"] == claims, "{}", got.1);

    entra.obo_mode(OboMode::Down);
    let got = post(&url, &obo_form(&assertion, &[])).await?;
    assert_entra_error(&got, 503, "temporarily_unavailable", 90033, "A transient error has occurred")?;

    entra.obo_mode(OboMode::Unreachable);
    let before = entra.obo_requests();
    ensure!(http()?.post(&url).form(&obo_form(&assertion, &[])).send().await.is_err(), "the connection is closed");
    ensure!(entra.obo_requests() == before + 1);

    entra.obo_mode(OboMode::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    ensure!(post(&url, &obo_form(&assertion, &[])).await?.0 == 200 && started.elapsed() >= Duration::from_millis(300));
    entra.reset();

    let other_app = entra.access_token(&TokenSpec::new(T1, "api://localhost:3000/another-app"));
    let unpublished = entra.access_token(&TokenSpec::new(T1, &aud).signer(Signer::Unpublished));
    let expired = entra.access_token(&TokenSpec::new(T1, &aud).expires_in(-600));
    let other_tenant = entra.access_token(&TokenSpec::new(T2, &aud));
    let cases: [Case; 9] = [
        (&assertion, &[("client_secret", "wrong")], 401, "invalid_client", 7000215, "Invalid client secret provided."),
        (
            &assertion,
            &[("client_id", "unknown-app")],
            400,
            "unauthorized_client",
            700016,
            "Application with identifier 'unknown-app' was not found in the directory '11111111-",
        ),
        (
            &assertion,
            &[("scope", "")],
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ),
        (
            &assertion,
            &[("requested_token_use", "logon_cert")],
            400,
            "invalid_request",
            70011,
            "The provided value for the input parameter 'requested_token_use' is not valid.",
        ),
        (
            &assertion,
            &[("grant_type", "client_credentials")],
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type",
        ),
        (
            &other_app,
            &[],
            400,
            "invalid_grant",
            500131,
            "Assertion audience does not match the Client app presenting the assertion.",
        ),
        (
            &unpublished,
            &[],
            400,
            "invalid_grant",
            50013,
            "Assertion failed signature validation. [Reason - The key was not found.",
        ),
        (&expired, &[], 400, "invalid_grant", 500133, "Assertion is not within its valid time range."),
        (
            &other_tenant,
            &[],
            400,
            "invalid_grant",
            50013,
            "Assertion failed signature validation. [Reason - The assertion was issued in tenant '2222",
        ),
    ];
    for (token, changes, status, error, code, text) in cases {
        let got = post(&url, &obo_form(token, changes)).await?;
        assert_entra_error(&got, status, error, code, text).with_context(|| format!("changes {changes:?}"))?;
    }

    let correlation = "0f0e0d0c-0b0a-4909-8807-060504030201";
    let resp = http()?
        .post(&url)
        .header("client-request-id", correlation)
        .form(&obo_form(&assertion, &[("client_secret", "x")]))
        .send()
        .await?;
    let body: Value = json_of(resp).await?;
    ensure!(body["correlation_id"] == correlation, "Entra echoes client-request-id: {body}");
    ensure!(entra.issued_obo_tokens().len() == 1, "only the slow request succeeded");
    Ok(())
}
