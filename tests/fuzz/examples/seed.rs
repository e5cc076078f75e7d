//! Writes the seed corpora in `corpus/<target>/` from the gateway's own encoders: signed
//! cookies and tickets from the real keyring, login transactions from `encode_flow`, Engine.IO
//! payloads from `encode_payload`, real signed JWTs; plus the example configs and Teams fixtures.
//!
//! Run from anywhere: `cargo run --manifest-path tests/fuzz/Cargo.toml --example seed`. It
//! rewrites only the files it names, so hand-added seeds and crash inputs stay.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::channel::socketio::engine_io::{encode_payload, Version};
use gateway::config::types::{ProviderName, SameSite};
use gateway::session::cookie::{set_cookie, CookieSettings, SessionCookie};
use gateway::session::ticket::Tickets;
use gateway::session::{Purpose, SessionId};
use gateway::store::redis::encode_flow;
use gateway::store::sealed::Sealer;
use gateway::auth::flow::{FlowRecord, Opener};
use gateway_fuzz::{
    keyring, BOT_APP_ID, CLIENT_ID, COOKIE_NAME, ISSUER, NONCE, OTHER_SECRET, RSA_DER, RSA_KID, SECRET,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// Far enough ahead that committed seeds stay valid (2100-01-01).
const FAR_FUTURE: u64 = 4_102_444_800;
/// Lifetime of the committed tickets.
const LONG_TTL: Duration = Duration::from_secs(FAR_FUTURE - 1_800_000_000);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = root.join("../..");
    let mut seeds = Seeds { dir: root.join("corpus"), count: 0 };
    let keys = keyring(&[SECRET, OTHER_SECRET]);
    let old = keyring(&[OTHER_SECRET]);
    let id = SessionId::from_bytes(&[7u8; 32]).ok_or("session id")?;
    let other = SessionId::from_bytes(&(0u8..32).collect::<Vec<_>>()).ok_or("session id")?;

    // session_cookie: 0 = Cookie headers (NUL between headers), 1 = payload to sign.
    let settings =
        CookieSettings { name: COOKIE_NAME.to_owned(), secure: true, same_site: SameSite::None, partitioned: true };
    let long = SessionCookie { session: id, generation: 0, expires_at: FAR_FUTURE };
    let set = set_cookie(&long, &settings, &keys);
    let pair = set.split(';').next().unwrap_or_default();
    seeds.put("session_cookie", "set-cookie-pair", &[b"\0", pair.as_bytes()].concat())?;
    let rotated = SessionCookie { session: other, generation: 3, expires_at: FAR_FUTURE };
    let old_pair = set_cookie(&rotated, &settings, &old);
    let old_pair = old_pair.split(';').next().unwrap_or_default();
    seeds.put("session_cookie", "rotated-key", &[b"\0theme=dark; ", old_pair.as_bytes(), b"; lang=en"].concat())?;
    let code_as_cookie = format!("{COOKIE_NAME}={}", keys.sign(Purpose::HandoffCode, id.as_bytes()));
    seeds.put(
        "session_cookie",
        "two-headers",
        &[b"\0", code_as_cookie.as_bytes(), b"\0", pair.as_bytes()].concat(),
    )?;
    seeds.put("session_cookie", "two-values", &[b"\0", pair.as_bytes(), b"; ", old_pair.as_bytes()].concat())?;
    let payload = [id.as_bytes(), &0u32.to_be_bytes()[..], &FAR_FUTURE.to_be_bytes()].concat();
    seeds.put("session_cookie", "payload-44", &[&[1u8][..], &payload].concat())?;

    // connect_ticket: 0 = URL text, 1 = session id + provider, 2 = Teams reference payload,
    // 3 = session id of a channel ticket.
    let tickets = Tickets::new(&keys, LONG_TTL);
    let connect = tickets.issue_connect(&id, "entra").ok_or("ticket")?;
    seeds.put("connect_ticket", "ticket", &[b"\0", connect.as_bytes()].concat())?;
    let old_ticket = Tickets::new(&old, LONG_TTL).issue_connect(&other, "dev").ok_or("ticket")?;
    seeds.put("connect_ticket", "ticket-old-key", &[b"\0", old_ticket.as_bytes()].concat())?;
    let expired = Tickets::new(&keys, Duration::ZERO).issue_channel(&id).ok_or("ticket")?;
    seeds.put("connect_ticket", "ticket-expired", &[b"\0", expired.as_bytes()].concat())?;
    let teams_user = [&FAR_FUTURE.to_be_bytes()[..], b"72f988bf/cd723fa0-0c2a-4d34"].concat();
    let reference = format!("t.{}", keys.sign(Purpose::TeamsUser, &teams_user));
    seeds.put("connect_ticket", "teams-reference", &[b"\0", reference.as_bytes()].concat())?;
    seeds.put("connect_ticket", "ticket-payload", &[&[1u8][..], id.as_bytes(), b"entra"].concat())?;
    seeds.put("connect_ticket", "teams-payload", &[&[2u8][..], &teams_user].concat())?;
    seeds.put("connect_ticket", "channel-ticket", &[&[3u8][..], id.as_bytes()].concat())?;

    // handoff_body: the JSON client.js posts, and near misses.
    seeds.put("handoff_body", "code", br#"{"code":"k3ZsV0rQ6l9mY8wXyq1n2b3c4d5e6f7g8h9i0jKLMNO"}"#)?;
    seeds.put("handoff_body", "extra-fields", br#"{"code":"abc","type":"gateway:auth","code2":1}"#)?;
    seeds.put("handoff_body", "not-a-string", br#"{"code":123}"#)?;
    seeds.put("handoff_body", "escaped", br#"{"code":"a\u0000b\"c"}"#)?;

    // flow_state: 0 = callback query, 1 = a sealed value from Redis, 2 = transaction JSON.
    seeds.put(
        "flow_state",
        "callback-query",
        b"\0code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj&iss=https%3A%2F%2Fidp.test",
    )?;
    seeds.put("flow_state", "callback-error", b"\0error=access_denied&error_description=The+user+cancelled&state=x")?;
    let foreign = Sealer::from_keyring(&old).seal("gw:f:state", b"{}").ok_or("seal")?;
    seeds.put("flow_state", "sealed-foreign", &[&[1u8][..], &foreign].concat())?;
    let provider = ProviderName::parse("entra").map_err(|e| e.to_string())?;
    for (name, opener, teams) in [
        ("flow-window", Opener::Window, None),
        ("flow-office", Opener::Office, None),
        ("flow-teams", Opener::Teams, Some("72f988bf/cd723fa0".to_owned())),
    ] {
        let flow = FlowRecord {
            session: id,
            provider: provider.clone(),
            pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned().into(),
            nonce: "n-0S6_WzA2Mj".to_owned(),
            opener,
            teams_user: teams,
        };
        seeds.put("flow_state", name, &[&[2u8][..], &encode_flow(&flow)?].concat())?;
    }

    // url_validation: public URL, extra host, Host, Origin (one per line).
    for (name, text) in [
        ("https", "https://gw.example.com\nhttps://addin.example.com\ngw.example.com:443\nhttps://addin.example.com"),
        ("localhost", "http://localhost:3001\nalias.test\nLOCALHOST:3001\nhttp://localhost:3001"),
        ("ipv6", "https://[::1]:8443\n[::1]\n[::1]:8443\nhttps://[::1]:8443"),
        (
            "userinfo",
            "https://gw.example.com\nevil.example\ngw.example.com@evil.example\nhttps://gw.example.com.evil.example",
        ),
        ("trailing-dot", "https://gw.example.com:8443/\ngw.example.com\ngw.example.com.:8443\nnull"),
    ] {
        seeds.put("url_validation", name, text.as_bytes())?;
    }

    // path_normalize: request paths, with the tricks the rules must see through.
    for (name, path) in [
        ("encoded-dotdot", "/public/..%2fapi/x"),
        ("double-slash", "//api//x/"),
        ("query", "/public?x=/api#/api"),
        ("servlet", "/public/..;/api;jsessionid=1/x"),
        ("windows", "/API./x%20/..\\y"),
        ("overlong", "/%c0%ae%c0%ae/api"),
        ("percent-percent", "/%252e%252e/api"),
    ] {
        seeds.put("path_normalize", name, path.as_bytes())?;
    }

    // config_parse: every example config and every refused fixture.
    for dir in [repo.join("config"), repo.join("tests/fixtures/config/bad")] {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let name = path.file_stem().and_then(|s| s.to_str()).ok_or("file name")?;
                seeds.put("config_parse", name, &std::fs::read(&path)?)?;
            }
        }
    }

    // engine_io: 0 = v4 body, 1 = v3 body (text or binary), 2 = polling query.
    let packets: Vec<String> = vec![
        "40".into(),
        "42[\"auth_success\",[{\"providerName\":\"entra\"}]]".into(),
        "2".into(),
        "42[\"é😀\"]".into(),
    ];
    for (name, version, binary, mode) in
        [("v4", Version::V4, false, 0u8), ("v3-text", Version::V3, false, 1), ("v3-binary", Version::V3, true, 1)]
    {
        let (_, body) = encode_payload(version, binary, &packets);
        seeds.put("engine_io", name, &[&[mode][..], &body].concat())?;
    }
    seeds.put("engine_io", "query-v4", b"\x02EIO=4&transport=polling&t=OaYz0&sid=Zm9vYmFy")?;
    seeds.put("engine_io", "query-v3", b"\x02EIO=3&transport=websocket&b64=1")?;

    // teams_activity: the recorded Teams activities.
    for entry in std::fs::read_dir(repo.join("tests/fixtures/teams"))? {
        let path = entry?.path();
        let name = path.file_stem().and_then(|s| s.to_str()).ok_or("file name")?;
        seeds.put("teams_activity", name, &std::fs::read(&path)?)?;
    }

    // jwt: 0 = tokens as received, 1 = header and payload JSON for the harness to sign.
    let claims = json!({"iss": ISSUER, "sub": "u1", "aud": CLIENT_ID, "exp": FAR_FUTURE, "iat": 1_700_000_000,
                        "nonce": NONCE, "email": "u1@example.test", "email_verified": true, "name": "User One"});
    let rsa = EncodingKey::from_rsa_der(RSA_DER);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RSA_KID.to_owned());
    let id_token = jsonwebtoken::encode(&header, &claims, &rsa)?;
    seeds.put("jwt", "id-token-rs256", &[b"\0", id_token.as_bytes()].concat())?;
    let bot_claims = json!({"iss": "https://api.botframework.com", "aud": BOT_APP_ID, "exp": FAR_FUTURE,
                            "nbf": 1_700_000_000, "serviceurl": "https://smba.trafficmanager.net/amer/"});
    let bot_token = jsonwebtoken::encode(&header, &bot_claims, &rsa)?;
    seeds.put("jwt", "bot-token-rs256", &[b"\0", bot_token.as_bytes()].concat())?;
    seeds.put("jwt", "alg-none", b"\0eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.")?;
    let ec_header = json!({"alg": "ES256", "kid": "ec", "typ": "JWT"}).to_string();
    let mut many = claims.clone();
    many["aud"] = json!([CLIENT_ID, "other"]);
    many["azp"] = json!(CLIENT_ID);
    for (name, h, c) in [
        ("signed-es256", ec_header.clone(), claims.clone()),
        ("signed-aud-list", ec_header.clone(), many),
        ("signed-hs256-header", json!({"alg": "HS256", "kid": "ec"}).to_string(), claims.clone()),
        ("signed-rs256-header", json!({"alg": "RS256", "kid": "a"}).to_string(), claims.clone()),
        ("signed-no-kid", json!({"alg": "ES256"}).to_string(), json!({"iss": ISSUER, "sub": "u", "exp": 1})),
    ] {
        seeds.put("jwt", name, &[&[1u8][..], h.as_bytes(), b"\0", c.to_string().as_bytes()].concat())?;
    }

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    println!("wrote {} seed files (now = {now})", seeds.count);
    Ok(())
}

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), data)?;
        self.count += 1;
        Ok(())
    }
}
