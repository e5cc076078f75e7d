//! `EntraStandIn`: a local Microsoft Entra ID for integration tests: per-tenant OpenID metadata,
//! signing keys that rotate, bearer tokens minted on demand, and the on-behalf-of (OBO) exchange.
//!
//! ```text
//!  {tid} is any tenant segment (a GUID, `common`, `organizations`); {authority} = http://127.0.0.1:PORT
//!  GET  /{tid}/v2.0/.well-known/openid-configuration ─▶ issuer {authority}/{tid}/v2.0, jwks_uri, token_endpoint, …
//!  GET  /{tid}/discovery/v2.0/keys ─▶ {"keys":[{kty,use,kid,x5t,n,e,issuer}]}   (v1 path /{tid}/discovery/keys: no issuer)
//!  POST /{tid}/oauth2/v2.0/token   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer, requested_token_use=on_behalf_of,
//!                                  client_id + client_secret (form or Basic), assertion, scope
//!       ─▶ 200 {token_type, scope, expires_in, ext_expires_in, access_token[, refresh_token if offline_access]}
//!       ─▶ 4xx/503 {error, error_description "AADSTSn: … Trace ID: … Correlation ID: … Timestamp: …",
//!                   error_codes, timestamp, trace_id, correlation_id, error_uri[, suberror][, claims]}
//!  keys: A signs ─publish_next_key()─▶ A signs, B published ─rotate()─▶ B signs, A published ─retire_old_key()─▶ B only
//! ```
//! Test tokens come from [`EntraStandIn::access_token`]: v1 tokens carry Entra's fixed issuer
//! `https://sts.windows.net/{tid}/`, v2 tokens `{authority}/{tid}/v2.0`. The JWKS has no `x5c`
//! (the keys have no certificates). Knobs are sticky until [`EntraStandIn::reset`]; keys, counters
//! and records survive it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ports;

#[path = "entra_server.rs"]
mod server;

/// The application (client) id [`EntraStandIn::set_client`] starts with: the gateway's app.
pub const DEFAULT_CLIENT_ID: &str = "5f0c6a1e-7b2d-4c3e-9a8f-1d2e3f4a5b6c";
/// Its secret; `~`, `.` and `_` as in secrets Entra generates, so form-encoding is exercised.
pub const DEFAULT_CLIENT_SECRET: &str = "Qx8~stand-in.secret_With+special/chars";
/// The app's display name, as AADSTS65001 quotes it.
pub const CLIENT_APP_NAME: &str = "gateway-test-api";
/// `appid` / `azp` of minted tokens: the client app that asked for them (e.g. the add-in's host).
pub const CALLER_APP_ID: &str = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e";
/// `oid` of the default user.
pub const DEFAULT_OID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
/// `name` of the default user.
pub const DEFAULT_NAME: &str = "Ada Lovelace";
/// `upn` (v1) / `preferred_username` (v2) of the default user.
pub const DEFAULT_USERNAME: &str = "ada@contoso.test";
/// `scp` of minted tokens unless the spec says otherwise; also what `{api}/.default` grants.
pub const DEFAULT_SCOPE: &str = "access_as_user";
/// The resource an OBO scope without a resource prefix (e.g. `User.Read`) is for.
pub const GRAPH: &str = "https://graph.microsoft.com";
/// `grant_type` of the OBO request (RFC 7523 §2.1).
pub const OBO_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `expires_in` and `ext_expires_in` of OBO answers, in seconds.
pub const OBO_EXPIRES_IN: i64 = 3599;
/// Entra back-dates `nbf` and `iat` by five minutes; the default [`TokenSpec::not_before`].
pub const NOT_BEFORE_OFFSET_SECS: i64 = -300;
/// Clock skew the OBO endpoint allows on an assertion's `exp` and `nbf`, in seconds.
pub const ASSERTION_SKEW_SECS: u64 = 300;
/// Longest [`OboMode::Slow`] delay honoured; longer ones are cut to this.
pub const MAX_OBO_DELAY: Duration = Duration::from_secs(60);

/// Tenant segments that stand for "the user's tenant" rather than one tenant.
const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];
/// Form fields `TokenForm`'s `Debug` hides.
const SECRET_FIELDS: [&str; 3] = ["client_secret", "assertion", "client_assertion"];
/// How many binds [`EntraStandIn::start`] tries before giving up.
const BIND_ATTEMPTS: u32 = 50;

/// The two published keys (PKCS#1 DER and modulus); see `tests/fixtures/keys/README.md`.
const RSA_A_DER: &[u8] = include_bytes!("../fixtures/keys/rsa-a.der");
const RSA_A_N: &str = include_str!("../fixtures/keys/rsa-a.n");
const RSA_A_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/keys/rsa-a.pub.pem");
const RSA_B_DER: &[u8] = include_bytes!("../fixtures/keys/rsa-b.der");
const RSA_B_N: &str = include_str!("../fixtures/keys/rsa-b.n");
/// A third RSA key (PKCS#1 DER, base64) that no JWKS ever holds; made for this stand-in only,
/// it protects nothing.
const RSA_UNPUBLISHED_DER_B64: &str = concat!(
    "MIIEpAIBAAKCAQEAqBRVO3dErFQ9JwhQaFs0bDacyn2LiB2Zgz/Reh5xQc+NUxuV/gNBao38Afm1",
    "Fk4DsXd6vxmjsa01S0q1AdH1cTa4Y5oN/Nn8bm09OGypXv0qep+M4Zmcy+bCY5ifGOzUc9gDAVJo",
    "U7l16IoddBlLWMynUCc4HKM8FG0hr2RmYj6KPbO6e08mz80oCFWmoRUhQSAmqjij8Nb3CU4P1ske",
    "hA4M6HbxLyvRCKlgdr6sx8M8zPXQM2ifeLETMIUTN4b5glVutMam+gwytme+Cxza06pDoWA9uyXY",
    "Hm3lVUttHdAqbLrhHm/XtbNYAbr7Bh47IcECZsoJwgpz8tzSypquiQIDAQABAoIBAAulOwGPgi/R",
    "d1o2uoF8fj2YLBVgjPQdnucH2y7zoIO/imptcR9EIPptw33si/YzahCX92Z5s4yKNHTWxINPhYq2",
    "UKDACgOQo+uPwIviBXsqHdEYsGVqJAHBp4rIho9uy0qKdyzWhZl1clyuAxvp671HkrkcOohLbAx7",
    "Qjf5hBl+4H1PPn1mNSrVTHXDc/wO62peYkpsABu0WGYhO2OixzkFlsyTZh0xs0Jj1woBMcfT4AXX",
    "Ekd9+I4VVIEKH9wh4oiqY+/STKvyKaQ+9mxYWczqx4uSOAarjw0c8rkyb9fjwdCS4MjrVZ9x4OEr",
    "owGBz2JUJAtWNyJUWhvWZEa7Mk0CgYEA3XO3QUKyij/Hs57zdvwBl39fPNU3O3iiaqsuha4hGg99",
    "wnZ+BD9REToDSWrlkLSrnmBqc7XTMQU3T7s8L/Ipa34utY0RG31ZYeFTR2QwuqrFvYTvByfbVAyW",
    "e/h2r5/u3FPlcuvvii6OFAlcLQ9dbGJGYWglmazzCwkA84Tz9X0CgYEAwk0J44dOB85V3KbXQYCF",
    "NmKcwHYXGRPIsNFTMf2S5chd158T9lxoSiswMVsEsCpIfkMZ2dDpMWPoWD96emvCaAARb0X/y6j3",
    "ABxZs15HCqZ/xyNKmkXLU/SGVaoPcR94CQAzGNLc2HTknAQuQLpeQ67U9+AACknrMtYDf+3p+v0C",
    "gYAljEE+J3juR/IsWn8dZY0/irEzN1OuGb4wJ+YzdFrYeFfyaPTk83djXFrCUAWsi3Wt3Nsv01yD",
    "q0a9lhmWZ5DuUO7Kiaik6JQHLJVaPXqlq97rS2bb574geiHp0y8MiCmP4gm9epOa8lnUu+GNIlXM",
    "0rzsNyRo8hIjhNtMbvaOYQKBgQC6RPix88jOmvSdcCT0Wq1akfcMWymRlPHU8Rf82Me3Gfs89vhA",
    "Oh6Q3A57gnJgIGkXAmUJ98lW3BymXVShgCUDZu1P659qMzV4GbW0yzD3+N6Onjqq4zYl6knOXhYn",
    "sK92kYZqyduGd6miGC/vRbuQz07Dwy7Grk6YkasRPZgOUQKBgQCsfpT+LnqrdXauIRIjM+nV0EkD",
    "np/S3JGzDQzrnztK8Xf0zP3lr5BuCt5UjoT5rO1svWVxzDH388P0NR8o2tuPn5QUTD6h2ehKExkP",
    "Ji7EQRO1VytuyR/6e0YDAgWKfmE+V5ztW4g4aRTv1c2Bp7QPeldXtndMl5V7an19vKNgrQ==",
);
/// RFC 7638 thumbprint of that key, its `kid`.
const UNPUBLISHED_KID: &str = "eCeszgIM4jZurnZpE0iyZLsoKYT6OOisEqSbcAj7jE0";

type RespBody = BoxBody<Bytes, Infallible>;

/// One of the two keys the stand-in publishes and signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandInKey {
    /// `fixtures/keys/rsa-a`: signs first.
    A,
    /// `fixtures/keys/rsa-b`: the next key.
    B,
}

impl StandInKey {
    /// The other key.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// Its `kid` (and `x5t`): the RFC 7638 SHA-256 thumbprint, base64url.
    pub fn kid(self) -> String {
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{}"}}"#, self.modulus());
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
    }

    fn modulus(self) -> &'static str {
        match self {
            Self::A => RSA_A_N.trim(),
            Self::B => RSA_B_N.trim(),
        }
    }

    fn encoding_key(self) -> EncodingKey {
        EncodingKey::from_rsa_der(match self {
            Self::A => RSA_A_DER,
            Self::B => RSA_B_DER,
        })
    }
}

/// Access-token format: Entra picks it per resource (`accessTokenAcceptedVersion`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenVersion {
    /// `ver: "1.0"`, `iss: https://sts.windows.net/{tid}/`, `upn` and `unique_name`, `appid`.
    V1,
    /// `ver: "2.0"`, `iss: {authority}/{tid}/v2.0`, `preferred_username`, `azp`.
    #[default]
    V2,
}

/// How a minted token is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Signer {
    /// RS256 by the key that signs now ([`EntraStandIn::signing_kid`]).
    #[default]
    Current,
    /// RS256 by this key with its own `kid`, published or not.
    Key(StandInKey),
    /// RS256 by a key no JWKS ever holds, with that key's own `kid`.
    Unpublished,
    /// RS256 by the never-published key, but the header names the current key's `kid`.
    ForgedKid,
    /// Header `alg: "none"` (current `kid`) and an empty signature: `header.claims.`.
    AlgNone,
    /// HS256 keyed with the PEM of key A's public half (`fixtures/keys/rsa-a.pub.pem`), the
    /// RS256→HS256 confusion attack; current `kid`.
    Hs256WithPublicKey,
}

/// What [`EntraStandIn::access_token`] mints. Build with [`TokenSpec::new`] and the setters, or
/// struct update syntax; every field is public.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    /// `tid`, and the tenant in `iss`.
    pub tenant: String,
    /// Token format.
    pub version: TokenVersion,
    /// `aud`, e.g. `api://localhost:3000/{client id}` or the client id.
    pub aud: String,
    /// `scp`, space-separated; `None` leaves it out (an app-only token).
    pub scp: Option<String>,
    /// `oid`.
    pub oid: String,
    /// `name`.
    pub name: String,
    /// `upn` and `unique_name` (v1) or `preferred_username` (v2).
    pub username: String,
    /// `appid` (v1) or `azp` (v2).
    pub app_id: String,
    /// `exp` = now + this, in seconds; negative for an expired token.
    pub expires_in: i64,
    /// `nbf` = `iat` = now + this, in seconds (default [`NOT_BEFORE_OFFSET_SECS`]).
    pub not_before: i64,
    /// How the token is signed.
    pub signer: Signer,
    /// Claims merged over the others last (an object; a `null` value removes that claim).
    pub extra: Value,
}

impl TokenSpec {
    /// A valid v2 user token for `tenant` and `aud`: the default user, `scp` [`DEFAULT_SCOPE`],
    /// one hour of life, `nbf` five minutes back, signed by the current key.
    pub fn new(tenant: &str, aud: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            version: TokenVersion::V2,
            aud: aud.to_owned(),
            scp: Some(DEFAULT_SCOPE.to_owned()),
            oid: DEFAULT_OID.to_owned(),
            name: DEFAULT_NAME.to_owned(),
            username: DEFAULT_USERNAME.to_owned(),
            app_id: CALLER_APP_ID.to_owned(),
            expires_in: 3600,
            not_before: NOT_BEFORE_OFFSET_SECS,
            signer: Signer::Current,
            extra: json!({}),
        }
    }

    /// The v1 format instead.
    pub fn v1(mut self) -> Self {
        self.version = TokenVersion::V1;
        self
    }

    /// `scp` = `scp`.
    pub fn scp(mut self, scp: &str) -> Self {
        self.scp = Some(scp.to_owned());
        self
    }

    /// Signed as `signer` says.
    pub fn signer(mut self, signer: Signer) -> Self {
        self.signer = signer;
        self
    }

    /// `exp` = now + `secs` (negative: already expired).
    pub fn expires_in(mut self, secs: i64) -> Self {
        self.expires_in = secs;
        self
    }

    /// Claims merged over the others (see [`TokenSpec::extra`]).
    pub fn extra(mut self, claims: Value) -> Self {
        self.extra = claims;
        self
    }
}

/// How the OBO endpoint answers; set with [`EntraStandIn::obo_mode`] (sticky).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OboMode {
    /// Checks the request and issues a token.
    #[default]
    Success,
    /// After the checks pass: 400 `invalid_grant`, AADSTS65001, `suberror: consent_required`.
    ConsentRequired,
    /// After the checks pass: 400 `interaction_required`, AADSTS50076 (MFA), `suberror:
    /// basic_action`, and `claims` (the challenge, a JSON text) passed through as is.
    InteractionRequired {
        /// The claims challenge, e.g. `{"access_token":{"capolids":{"essential":true,"values":["…"]}}}`.
        claims: String,
    },
    /// Waits this long (at most [`MAX_OBO_DELAY`]) after reading the form, then answers normally.
    Slow(Duration),
    /// 503 `temporarily_unavailable`, AADSTS90033, without checking anything.
    Down,
    /// No answer: the connection is closed once the request head is read (still counted).
    Unreachable,
}

/// The form fields of a token request as received; `Debug` hides `client_secret` and `assertion`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenForm(HashMap<String, String>);

impl TokenForm {
    /// One field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every field.
    pub fn fields(&self) -> &HashMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for TokenForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.iter().map(|(k, v)| (k, if SECRET_FIELDS.contains(&k.as_str()) { "[redacted]" } else { v }));
        f.debug_map().entries(shown).finish()
    }
}

#[derive(Debug, Clone)]
struct Knobs {
    client_id: String,
    client_secret: String,
    obo_mode: OboMode,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            obo_mode: OboMode::Success,
        }
    }
}

/// Everything behind the one lock: knobs, key state and records.
#[derive(Debug)]
struct State {
    knobs: Knobs,
    signing: StandInKey,
    /// Published keys, the signing one first.
    published: Vec<StandInKey>,
    last_obo: Option<TokenForm>,
    issued_obo: Vec<String>,
    /// Authorization codes of the interactive (popup) flow, by code.
    codes: HashMap<String, CodeGrant>,
    /// Access tokens issued by the authorization-code flow.
    issued_interactive: Vec<String>,
}

/// What one authorization code was issued for.
#[derive(Debug, Clone)]
struct CodeGrant {
    tenant: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
}

/// State shared by the server tasks and the [`EntraStandIn`] handle.
struct Shared {
    authority: String,
    state: Mutex<State>,
    obo_requests: AtomicU64,
    jwks_requests: AtomicU64,
    rng: SystemRandom,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        // ring's RNG fails only when the OS has none; the clock then keeps values unique.
        if self.rng.fill(&mut bytes).is_err() {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_le_bytes();
            let n = N.min(nanos.len());
            bytes[..n].copy_from_slice(&nanos[..n]);
        }
        bytes
    }

    /// A random opaque value, base64url.
    fn opaque(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.random_bytes::<24>())
    }

    /// A random version-4 GUID, as Entra writes trace and correlation ids.
    fn guid(&self) -> String {
        let mut b = self.random_bytes::<16>();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }

    /// The v2 issuer of `tenant`; Entra writes `{tenantid}` literally for the multi-tenant segments.
    fn issuer(&self, tenant: &str) -> String {
        let tenant = if MULTI_TENANT.contains(&tenant) { "{tenantid}" } else { tenant };
        format!("{}/{tenant}/v2.0", self.authority)
    }

    fn claims(&self, spec: &TokenSpec) -> Value {
        let now = unix_now();
        let (tid, aud) = (&spec.tenant, &spec.aud);
        let mut claims = json!({
            "aud": aud, "iat": now + spec.not_before, "nbf": now + spec.not_before, "exp": now + spec.expires_in,
            "aio": self.opaque(), "name": spec.name, "oid": spec.oid, "scp": spec.scp,
            "sub": pairwise_sub(&spec.oid, aud), "tid": tid, "uti": self.opaque(),
        });
        let more = match spec.version {
            TokenVersion::V1 => json!({
                "iss": v1_issuer(tid), "acr": "1", "amr": ["pwd"], "appid": spec.app_id, "appidacr": "1",
                "unique_name": spec.username, "upn": spec.username, "ver": "1.0",
            }),
            TokenVersion::V2 => json!({
                "iss": self.issuer(tid), "azp": spec.app_id, "azpacr": "1",
                "preferred_username": spec.username, "rh": self.opaque(), "ver": "2.0",
            }),
        };
        merge(&mut claims, &more);
        if spec.scp.is_none() {
            merge(&mut claims, &json!({ "scp": null }));
        }
        merge(&mut claims, &spec.extra);
        claims
    }

    fn sign(&self, claims: &Value, signer: Signer, version: TokenVersion) -> anyhow::Result<String> {
        let current = self.state().signing;
        let (alg, key, kid) = match signer {
            Signer::Current => (Algorithm::RS256, current.encoding_key(), current.kid()),
            Signer::Key(key) => (Algorithm::RS256, key.encoding_key(), key.kid()),
            Signer::Unpublished => (Algorithm::RS256, unpublished_key()?, UNPUBLISHED_KID.to_owned()),
            Signer::ForgedKid => (Algorithm::RS256, unpublished_key()?, current.kid()),
            Signer::Hs256WithPublicKey => (Algorithm::HS256, EncodingKey::from_secret(RSA_A_PUBLIC_PEM), current.kid()),
            Signer::AlgNone => {
                let header = json!({"typ": "JWT", "alg": "none", "kid": current.kid()});
                let encode = |v: &Value| serde_json::to_vec(v).map(|json| URL_SAFE_NO_PAD.encode(json));
                return Ok(format!("{}.{}.", encode(&header)?, encode(claims)?));
            }
        };
        let mut header = Header::new(alg);
        if version == TokenVersion::V1 {
            header.x5t = Some(kid.clone());
        }
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &key).context("cannot sign the token")
    }
}

/// A running Entra stand-in on `127.0.0.1:PORT`; the server stops when this is dropped.
pub struct EntraStandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl EntraStandIn {
    /// Starts the stand-in on an ephemeral port of the current tokio runtime (key A signs).
    ///
    /// Fails when `127.0.0.1:0` cannot be bound, or after 50 ports the [`ports`] registry had
    /// already handed out.
    pub async fn start() -> anyhow::Result<Self> {
        for _ in 0..BIND_ATTEMPTS {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("cannot bind 127.0.0.1:0 for the Entra stand-in")?;
            let addr = listener.local_addr().context("Entra stand-in listener has no address")?;
            if ports::reserve(addr.port()) {
                let state = State {
                    knobs: Knobs::default(),
                    signing: StandInKey::A,
                    published: vec![StandInKey::A],
                    last_obo: None,
                    issued_obo: Vec::new(),
                    codes: HashMap::new(),
                    issued_interactive: Vec::new(),
                };
                let shared = Arc::new(Shared {
                    authority: format!("http://{addr}"),
                    state: Mutex::new(state),
                    obo_requests: AtomicU64::new(0),
                    jwks_requests: AtomicU64::new(0),
                    rng: SystemRandom::new(),
                });
                let (shutdown, stop) = watch::channel(false);
                tokio::spawn(server::accept_loop(listener, Arc::clone(&shared), stop));
                return Ok(Self { shared, addr, shutdown });
            }
        }
        anyhow::bail!("Entra stand-in: every port the system offered was already handed out")
    }

    /// The listening address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The authority, `http://127.0.0.1:PORT` (no trailing slash): the gateway's `authority`.
    pub fn authority(&self) -> String {
        self.shared.authority.clone()
    }

    /// The v2 issuer of `tenant`, `{authority}/{tenant}/v2.0`.
    pub fn issuer(&self, tenant: &str) -> String {
        self.shared.issuer(tenant)
    }

    /// The OpenID metadata of `tenant`, `{authority}/{tenant}/v2.0/.well-known/openid-configuration`.
    pub fn metadata_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.shared.authority)
    }

    /// The JWKS of `tenant`, `{authority}/{tenant}/discovery/v2.0/keys`.
    pub fn jwks_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/discovery/v2.0/keys", self.shared.authority)
    }

    /// The token (OBO) endpoint of `tenant`, `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.shared.authority)
    }

    /// Sticky: the OBO endpoint accepts only this app (`client_id`, `client_secret`).
    pub fn set_client(&self, client_id: &str, client_secret: &str) {
        let mut state = self.shared.state();
        state.knobs.client_id = client_id.to_owned();
        state.knobs.client_secret = client_secret.to_owned();
    }

    /// Sticky: how the OBO endpoint answers from now on.
    pub fn obo_mode(&self, mode: OboMode) {
        self.shared.state().knobs.obo_mode = mode;
    }

    /// Knobs back to their defaults (client [`DEFAULT_CLIENT_ID`], [`OboMode::Success`]); the keys,
    /// counters and records are kept.
    pub fn reset(&self) {
        self.shared.state().knobs = Knobs::default();
    }

    /// The JWKS gains the next key ahead of a rotation; the current key still signs.
    pub fn publish_next_key(&self) {
        let mut state = self.shared.state();
        let next = state.signing.other();
        if !state.published.contains(&next) {
            state.published.push(next);
        }
    }

    /// The other key signs from now on (published now if it was not yet: an unannounced
    /// rotation); the old one stays in the JWKS until [`EntraStandIn::retire_old_key`].
    pub fn rotate(&self) {
        let mut state = self.shared.state();
        let next = state.signing.other();
        state.signing = next;
        state.published.retain(|k| *k != next);
        state.published.insert(0, next);
    }

    /// The JWKS holds only the signing key.
    pub fn retire_old_key(&self) {
        let mut state = self.shared.state();
        state.published = vec![state.signing];
    }

    /// `kid` of the key that signs now.
    pub fn signing_kid(&self) -> String {
        self.shared.state().signing.kid()
    }

    /// `kid`s in the JWKS, the signing key's first.
    pub fn published_kids(&self) -> Vec<String> {
        self.shared.state().published.iter().map(|k| k.kid()).collect()
    }

    /// Requests that reached a JWKS path (v1 or v2).
    pub fn jwks_requests(&self) -> u64 {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// A bearer token (compact JWT) as `spec` says; fails only if signing fails.
    pub fn try_access_token(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        self.shared.sign(&self.shared.claims(spec), spec.signer, spec.version)
    }

    /// [`EntraStandIn::try_access_token`] for tests.
    #[allow(clippy::expect_used)] // the keys are compiled in; a signing failure is a bug in this file
    pub fn access_token(&self, spec: &TokenSpec) -> String {
        self.try_access_token(spec).expect("the Entra stand-in cannot sign a token")
    }

    /// Requests that reached the token endpoint, in any mode (counted before any knob acts).
    pub fn obo_requests(&self) -> u64 {
        self.shared.obo_requests.load(Ordering::SeqCst)
    }

    /// The form of the last token request whose body was read (`None` before the first).
    pub fn last_obo_request(&self) -> Option<TokenForm> {
        self.shared.state().last_obo.clone()
    }

    /// Every access token the OBO endpoint issued, in order.
    pub fn issued_obo_tokens(&self) -> Vec<String> {
        self.shared.state().issued_obo.clone()
    }

    /// Every access token the interactive (popup) sign-in issued, in order.
    pub fn issued_interactive_tokens(&self) -> Vec<String> {
        self.shared.state().issued_interactive.clone()
    }
}

impl Drop for EntraStandIn {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// `iss` of v1 tokens for `tenant`: Entra's fixed STS name, whatever the authority.
pub fn v1_issuer(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// `iat`-style seconds since the epoch.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A pairwise `sub`: stable per user and audience, different across audiences (as Entra's is).
fn pairwise_sub(oid: &str, aud: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, format!("{oid}|{aud}").as_bytes()))
}

/// `extra`'s members over `claims`'; a `null` member removes the claim.
fn merge(claims: &mut Value, extra: &Value) {
    let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) else { return };
    for (name, value) in extra {
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.clone(), value.clone());
        }
    }
}

fn unpublished_key() -> anyhow::Result<EncodingKey> {
    let der = STANDARD.decode(RSA_UNPUBLISHED_DER_B64).context("the unpublished key is not base64")?;
    Ok(EncodingKey::from_rsa_der(&der))
}
