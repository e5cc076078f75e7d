//! `bearer_fixture DIR TENANT CLIENT_ID`: what the bearer row of `benches/run` needs without
//! Microsoft's service: writes `DIR/TENANT/discovery/v2.0/keys` (the JWKS of the test RSA key,
//! for a static file server standing in for `{authority}`) and prints one v2 access token for
//! `CLIENT_ID` (`scp` `access_as_user`, valid for an hour), signed with that key.
#![allow(clippy::print_stdout, reason = "the token is this program's output")]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const KEY_DER: &[u8] = include_bytes!("../../../tests/fixtures/keys/rsa-a.der");
const KEY_N: &str = include_str!("../../../tests/fixtures/keys/rsa-a.n");
const KID: &str = "bench-key";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, tenant, client_id] = args.as_slice() else {
        return Err("usage: bearer_fixture DIR TENANT CLIENT_ID".into());
    };
    let keys = PathBuf::from(dir).join(tenant).join("discovery/v2.0");
    std::fs::create_dir_all(&keys)?;
    let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": KID, "n": KEY_N.trim(), "e": "AQAB"}]});
    std::fs::write(keys.join("keys"), jwks.to_string())?;
    let authority = std::env::var("AUTHORITY")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "aud": client_id, "iss": format!("{authority}/{tenant}/v2.0"), "tid": tenant, "ver": "2.0",
        "iat": now - 300, "nbf": now - 300, "exp": now + 3600, "scp": "access_as_user",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81", "name": "Adele Vance",
        "preferred_username": "AdeleV@contoso.example", "azp": "ea5a67f6-b6f3-4338-b240-c655ddc3cc8e",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    println!("{}", jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(KEY_DER))?);
    Ok(())
}
