use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

fn env(name: &str) -> Option<String> {
    match name {
        "GATEWAY_SECRET" => Some(SECRET.to_owned()),
        "SHORT" => Some("tiny-secret-value".to_owned()),
        _ => None,
    }
}

fn minimal(extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:3001\"\npublic_url = \"https://localhost:3001\"\n\
         [upstream]\naddrs = [\"127.0.0.1:3000\"]\n\
         [session]\nsecret = \"env:GATEWAY_SECRET\"\n{extra}"
    )
}

fn errors(text: &str) -> String {
    load_str(text, "t.toml", &env).unwrap_err().to_string()
}

#[test]
fn minimal_config_loads_with_defaults() {
    let c = load_str(&minimal(""), "t.toml", &env).unwrap();
    assert_eq!(c.session.token_ttl.get(), defaults::DEFAULT_TOKEN_TTL);
    assert_eq!(c.session.cookie_name.as_str(), "gw_session");
    assert!(matches!(c.store, StoreConfig::Memory));
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let text = minimal("").replace("listen =", "lisen =");
    let e = errors(&text);
    assert!(e.starts_with("t.toml:2:1: server.lisen: unknown field `lisen`"), "{e}");
    assert!(e.ends_with("did you mean `listen`?"), "{e}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = minimal("[store]\nkind = \"disk\"\n").replace("env:GATEWAY_SECRET", "env:SHORT");
    let e = errors(&text);
    assert!(e.contains("t.toml: session.secret: secret is 17 bytes"), "{e}");
    assert!(e.contains("t.toml: store.kind: \"disk\" is not a store kind"), "{e}");
}

#[test]
fn secret_values_never_appear_in_messages() {
    let text = minimal("").replace("env:GATEWAY_SECRET", "env:SHORT");
    let e = errors(&text);
    assert!(e.contains("secret is 17 bytes"), "{e}");
    assert!(!e.contains("tiny-secret-value"), "{e}");
}
