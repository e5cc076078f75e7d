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
    assert_eq!(c.session.cookie_name.as_str(), "__Host-gw_session", "Secure cookies get the __Host- prefix");
    assert_eq!(c.session.popup_binding, PopupBinding::Handoff);
    assert_eq!(c.session.handoff_ttl.get(), defaults::DEFAULT_HANDOFF_TTL);
    assert!(matches!(c.store, StoreConfig::Memory));
    let plain = minimal("cookie_secure = false\ncookie_same_site = \"lax\"\ncookie_partitioned = false\n");
    assert_eq!(load_str(&plain, "t.toml", &env).unwrap().session.cookie_name.as_str(), "gw_session");
}

#[test]
fn a_multi_tenant_entra_provider_needs_allowed_tenants_and_prefixed_cookies_need_secure() {
    let entra = |extra: &str| {
        minimal(&format!("[providers.entra]\nkind = \"entra\"\ntenant = \"organizations\"\nclient_id = \"x\"\n{extra}"))
    };
    let e = errors(&entra(""));
    assert!(e.contains("providers.entra.allowed_tenants: is required while tenant = \"organizations\""), "{e}");
    assert!(load_str(&entra("allowed_tenants = [\"*\"]"), "t.toml", &env).is_ok());
    let c = load_str(&entra("allowed_tenants = [\"72F988BF-0000\"]"), "t.toml", &env).unwrap();
    assert_eq!(c.providers[0].sign_in.tenants, Some(vec!["72f988bf-0000".to_owned()]));
    assert!(errors(&entra("allowed_tenants = []")).contains("allowed_tenants: is an empty list"));
    let single = minimal("[providers.entra]\nkind = \"entra\"\ntenant = \"72f988bf\"\nclient_id = \"x\"\n");
    assert!(load_str(&single, "t.toml", &env).is_ok(), "a single-tenant provider needs no allowed_tenants");
    let e = errors(&minimal(
        "cookie_secure = false\ncookie_same_site = \"lax\"\ncookie_partitioned = false\ncookie_name = \"__Host-x\"\n",
    ));
    assert!(e.contains("session.cookie_name: \"__Host-x\" needs cookie_secure = true"), "{e}");
    assert!(errors(&minimal("popup_binding = \"link\"\n")).contains("session.popup_binding: \"link\" is not valid"));
}

#[test]
fn a_route_allow_rule_must_name_someone() {
    let route = |allow: &str| {
        minimal(&format!(
            "[providers.dev]\nkind = \"dev\"\n[[routes]]\nprefix = \"/admin/\"\nrequire = [\"dev\"]\nallow = {allow}\n"
        ))
    };
    let e = errors(&route("{}"));
    assert!(e.contains("routes[0].allow: lists nobody"), "{e}");
    let c = load_str(&route("{ domains = [\"Contoso.COM\"], roles = [\"Admin\"] }"), "t.toml", &env).unwrap();
    let allow = c.routes[0].allow.clone().unwrap();
    assert_eq!((allow.domains, allow.roles), (vec!["contoso.com".to_owned()], vec!["Admin".to_owned()]));
    assert!(errors(&route("{ emails = [\"not-an-email\"] }")).contains("\"not-an-email\" is not an email address"));
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

fn fixture_env(name: &str) -> Option<String> {
    match name {
        "GATEWAY_SECRET" => Some(SECRET.to_owned()),
        "SHORT_SECRET" => Some("only-twenty-bytes-ok".to_owned()),
        _ => None,
    }
}

/// Every file in `tests/fixtures/config/bad/` fails with exactly the message in its `.expected`
/// sibling (`GATEWAY_BLESS=1` rewrites them; review the diff before committing).
#[test]
fn broken_config_files_give_their_exact_messages() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config/bad");
    let bless = std::env::var_os("GATEWAY_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "only {} fixtures", files.len());
    let mut mismatches = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let got = match load_str(&text, &name, &fixture_env) {
            Ok(_) => format!("{name}: unexpectedly valid"),
            Err(e) => e.to_string(),
        };
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected.trim_end() != got {
            mismatches.push(format!("{name}\n  expected: {}\n  got:      {got}", expected.trim_end()));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn secrets_in_fixture_messages_are_never_echoed() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config/bad/07-literal-secret.toml"),
    )
    .unwrap();
    let e = load_str(&text, "07.toml", &fixture_env).unwrap_err().to_string();
    assert!(!e.contains("correct-horse"), "{e}");
}

/// `config/gateway.toml` shows every default at its default value.
#[test]
fn annotated_example_shows_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.toml");
    let raw: raw::RawConfig = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    use defaults::*;
    assert_eq!(raw.server.threads, DEFAULT_THREADS);
    assert_eq!(raw.server.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
    assert_eq!(raw.server.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    assert_eq!(raw.server.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(raw.server.header_timeout, DEFAULT_HEADER_TIMEOUT);
    assert_eq!(raw.server.body_min_rate, DEFAULT_BODY_MIN_RATE);
    assert_eq!(raw.server.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(raw.server.max_connections_per_client, DEFAULT_MAX_CONNECTIONS_PER_CLIENT);
    assert_eq!(raw.upstream.health_check_interval, DEFAULT_HEALTH_CHECK_INTERVAL);
    assert_eq!(raw.upstream.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(raw.upstream.idle_timeout, DEFAULT_UPSTREAM_IDLE_TIMEOUT);
    assert_eq!(raw.session.token_ttl, DEFAULT_TOKEN_TTL);
    assert_eq!(raw.session.ticket_ttl, DEFAULT_TICKET_TTL);
    assert_eq!(raw.session.cookie_name, None, "the default name depends on cookie_secure");
    assert_eq!(raw.session.lifetime, DEFAULT_SESSION_LIFETIME);
    assert_eq!(raw.session.handoff_ttl, DEFAULT_HANDOFF_TTL);
    assert_eq!(raw.session.popup_binding, DEFAULT_POPUP_BINDING);
    assert_eq!(raw.session.cookie_same_site, DEFAULT_COOKIE_SAME_SITE);
    assert_eq!(raw.store.kind, DEFAULT_STORE_KIND);
    assert_eq!(raw.store.key_prefix, DEFAULT_KEY_PREFIX);
    assert_eq!(raw.store.timeout, DEFAULT_STORE_TIMEOUT);
    assert_eq!(raw.channel.max_sockets_per_session, DEFAULT_MAX_SOCKETS_PER_SESSION);
    assert_eq!(raw.channel.ping_interval, DEFAULT_PING_INTERVAL);
    assert_eq!(raw.channel.max_sockets_per_client, DEFAULT_MAX_SOCKETS_PER_CLIENT);
    assert_eq!(raw.channel.max_sockets, DEFAULT_MAX_SOCKETS);
    assert_eq!(raw.channel.join_timeout, DEFAULT_JOIN_TIMEOUT);
    let teams = raw.teams.unwrap();
    assert_eq!(teams.code_ttl, DEFAULT_CODE_TTL);
    assert_eq!(teams.verify_bot_token, DEFAULT_VERIFY_BOT_TOKEN);
    assert_eq!(raw.identity.user_header, DEFAULT_USER_HEADER);
    assert_eq!(raw.identity.email_header, DEFAULT_EMAIL_HEADER);
    assert_eq!(raw.identity.preferred_username_header, DEFAULT_PREFERRED_USERNAME_HEADER);
    assert_eq!(raw.identity.name_header, DEFAULT_NAME_HEADER);
    assert_eq!(raw.identity.provider_header, DEFAULT_PROVIDER_HEADER);
    assert_eq!(raw.identity.access_token_header, DEFAULT_ACCESS_TOKEN_HEADER);
}

#[test]
fn connection_limits_are_checked_together() {
    let text = minimal("").replace(
        "public_url =",
        "max_connections = 10\nmax_connections_per_client = 11\nheader_timeout = \"0s\"\npublic_url =",
    );
    let e = errors(&text);
    assert!(e.contains("server.max_connections_per_client: 11 is above server.max_connections (10)"), "{e}");
    assert!(e.contains("server.header_timeout: must be longer than zero"), "{e}");
}
