//! Providers, route rules and the Teams section: the keys that name each other (a route's or
//! Teams' provider must exist; `obo_scopes` needs an Entra provider with a secret).

use std::collections::BTreeMap;

use http::Method;

use super::super::model::*;
use super::super::raw::*;
use super::super::secret;
use super::super::types::{ProviderName, PublicUrl, Ttl};
use super::{url_field, Context, Problems, BOT_FRAMEWORK_METADATA, DEFAULT_ENTRA_AUTHORITY};

pub(super) fn providers(
    raw: &BTreeMap<String, RawProvider>,
    dev_allowed: bool,
    ctx_public: Option<&PublicUrl>,
    ctx: &Context<'_>,
    p: &mut Problems,
) -> Vec<ProviderConfig> {
    let mut out = Vec::new();
    for (name, rp) in raw {
        let base = format!("providers.{name}");
        let Some(pname) = p.check(base.clone(), ProviderName::parse(name)) else { continue };
        let kind = match rp.kind.as_str() {
            "entra" => entra_kind(&base, rp, ctx_public, p),
            "google" => Some(ProviderKind::Google),
            "github" => Some(ProviderKind::Github),
            "oidc" => url_field(p, format!("{base}.issuer"), &rp.issuer, true)
                .flatten()
                .map(|issuer| ProviderKind::Oidc { issuer }),
            "oauth2" => {
                let a = url_field(p, format!("{base}.authorize_url"), &rp.authorize_url, true).flatten();
                let t = url_field(p, format!("{base}.token_url"), &rp.token_url, true).flatten();
                let u = url_field(p, format!("{base}.userinfo_url"), &rp.userinfo_url, true).flatten();
                match (a, t, u) {
                    (Some(authorize_url), Some(token_url), Some(userinfo_url)) => {
                        Some(ProviderKind::OAuth2 { authorize_url, token_url, userinfo_url })
                    }
                    _ => None,
                }
            }
            "dev" => {
                if !dev_allowed {
                    p.add(
                        format!("{base}.kind"),
                        "\"dev\" is refused on a non-loopback listener; set server.allow_dev_provider = true to allow it",
                    );
                }
                Some(ProviderKind::Dev)
            }
            other => {
                p.add(
                    format!("{base}.kind"),
                    format!("\"{other}\" is not a provider kind; valid: entra, google, github, oidc, oauth2, dev"),
                );
                None
            }
        };
        if rp.kind != "entra" {
            let entra_only = [
                ("tenant", rp.tenant.is_some()),
                ("authority", rp.authority.is_some()),
                ("accept_bearer", rp.accept_bearer),
                ("api_audiences", rp.api_audiences.is_some()),
                ("bearer_scopes", rp.bearer_scopes.is_some()),
            ];
            for (key, set) in entra_only {
                if set {
                    p.add(format!("{base}.{key}"), "is only used with kind = \"entra\"");
                }
            }
        }
        let sign_in = sign_in_rules(&base, rp, p);
        let is_dev = rp.kind == "dev";
        let client_id = match &rp.client_id {
            Some(id) if !id.trim().is_empty() => Some(id.clone()),
            Some(_) => {
                p.add(format!("{base}.client_id"), "is empty");
                None
            }
            None if is_dev => Some("gateway-dev".to_owned()),
            None => {
                p.add(format!("{base}.client_id"), "is missing");
                None
            }
        };
        let client_secret = match &rp.client_secret {
            Some(r) => p.check(format!("{base}.client_secret"), secret::resolve(r, ctx.env, ctx.base_dir)).map(Some),
            None => Some(None),
        };
        let revocation_url = url_field(p, format!("{base}.revocation_url"), &rp.revocation_url, false);
        let scopes = rp.scopes.clone().unwrap_or_else(|| default_scopes(&rp.kind));
        if let (Some(kind), Some(client_id), Some(client_secret), Some(revocation_url)) =
            (kind, client_id, client_secret, revocation_url)
        {
            out.push(ProviderConfig {
                display_name: rp.display_name.clone().unwrap_or_else(|| name.clone()),
                name: pname,
                kind,
                client_id,
                client_secret,
                scopes,
                revocation_url,
                sign_in,
            });
        }
    }
    out
}

/// The Entra kind: tenant, authority, and the bearer settings of single sign-on.
fn entra_kind(base: &str, rp: &RawProvider, public: Option<&PublicUrl>, p: &mut Problems) -> Option<ProviderKind> {
    let tenant = rp.tenant.clone().unwrap_or_else(|| "common".to_owned());
    let authority = rp.authority.clone().or_else(|| Some(crate::providers::presets::ENTRA_LOGIN.to_owned()));
    let authority = url_field(p, format!("{base}.authority"), &authority, true).flatten()?;
    if authority.path() != "/" || authority.query().is_some() {
        p.add(
            format!("{base}.authority"),
            format!("\"{authority}\" must be a scheme and host only, as in \"https://login.microsoftonline.com\""),
        );
    }
    let bearer = rp.accept_bearer.then(|| {
        let client_id = rp.client_id.clone().unwrap_or_default();
        let host = public.map(PublicUrl::authority).unwrap_or_default();
        let audiences =
            rp.api_audiences.clone().unwrap_or_else(|| vec![client_id.clone(), format!("api://{host}/{client_id}")]);
        if audiences.is_empty() {
            p.add(format!("{base}.api_audiences"), "is an empty list; no token could ever be accepted");
        }
        let scopes = rp.bearer_scopes.clone().unwrap_or_else(|| vec!["access_as_user".to_owned()]);
        if scopes.is_empty() {
            p.add(
                format!("{base}.bearer_scopes"),
                "is an empty list; name the scope your API exposes, as in \"access_as_user\"",
            );
        }
        BearerConfig { audiences, scopes }
    });
    if !rp.accept_bearer && (rp.api_audiences.is_some() || rp.bearer_scopes.is_some()) {
        p.add(format!("{base}.accept_bearer"), "is false, so api_audiences and bearer_scopes are not used");
    }
    Some(ProviderKind::Entra { tenant, authority, bearer })
}

/// Entra tenants that admit users of many organisations (or personal accounts).
const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// `allowed_*` of a provider. A multi-tenant Entra provider must say which tenants it admits:
/// without that, any Microsoft account anywhere could sign in.
fn sign_in_rules(base: &str, rp: &RawProvider, p: &mut Problems) -> SignInRules {
    let multi_tenant = rp.kind == "entra"
        && MULTI_TENANT.contains(&rp.tenant.as_deref().unwrap_or("common").to_ascii_lowercase().as_str());
    let tenants = match &rp.allowed_tenants {
        None if multi_tenant => {
            p.add(
                format!("{base}.allowed_tenants"),
                format!(
                    "is required while tenant = \"{}\" (any Microsoft account could sign in); list tenant ids, or [\"*\"] to admit any tenant on purpose",
                    rp.tenant.as_deref().unwrap_or("common")
                ),
            );
            None
        }
        None => None,
        Some(list) if list.is_empty() => {
            p.add(format!("{base}.allowed_tenants"), "is an empty list; list tenant ids, or [\"*\"] for any tenant");
            None
        }
        Some(list) if list.iter().any(|t| t == "*") => {
            if list.len() > 1 {
                p.add(
                    format!("{base}.allowed_tenants"),
                    "\"*\" admits every tenant; it cannot be combined with tenant ids",
                );
            }
            None
        }
        Some(list) => Some(list.iter().map(|t| t.trim().to_ascii_lowercase()).collect()),
    };
    if rp.allowed_tenants.is_some() && !matches!(rp.kind.as_str(), "entra" | "oidc") {
        p.add(format!("{base}.allowed_tenants"), "is only used with kind = \"entra\" or \"oidc\" (the `tid` claim)");
    }
    if !rp.allowed_groups.is_empty() && !matches!(rp.kind.as_str(), "entra" | "oidc" | "dev") {
        p.add(format!("{base}.allowed_groups"), "needs an ID token with `groups` or `roles` (kind entra, oidc or dev)");
    }
    SignInRules {
        tenants,
        domains: lower_domains(&format!("{base}.allowed_domains"), &rp.allowed_domains, p),
        emails: lower_emails(&format!("{base}.allowed_emails"), &rp.allowed_emails, p),
        groups: rp.allowed_groups.clone(),
    }
}

fn lower_domains(key: &str, list: &[String], p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for d in list {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || d.contains('@') || d.contains('/') || d.contains(' ') {
            p.add(key, format!("\"{d}\" is not a domain, as in \"contoso.com\""));
        } else {
            out.push(d);
        }
    }
    out
}

fn lower_emails(key: &str, list: &[String], p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for e in list {
        let e = e.trim().to_ascii_lowercase();
        if e.split('@').count() != 2 || e.starts_with('@') || e.ends_with('@') {
            p.add(key, format!("\"{e}\" is not an email address"));
        } else {
            out.push(e);
        }
    }
    out
}

fn allow_rule(base: &str, raw: &RawAllow, p: &mut Problems) -> AllowRule {
    let rule = AllowRule {
        emails: lower_emails(&format!("{base}.allow.emails"), &raw.emails, p),
        domains: lower_domains(&format!("{base}.allow.domains"), &raw.domains, p),
        groups: raw.groups.clone(),
        roles: raw.roles.clone(),
    };
    if raw.emails.is_empty() && raw.domains.is_empty() && raw.groups.is_empty() && raw.roles.is_empty() {
        p.add(
            format!("{base}.allow"),
            "lists nobody, so nobody would pass; remove it or name emails, domains, groups or roles",
        );
    }
    rule
}

fn default_scopes(kind: &str) -> Vec<String> {
    let scopes: &[&str] = match kind {
        "github" => &["read:user", "user:email"],
        "oauth2" => &[],
        "entra" => &["openid", "profile", "email", "offline_access"],
        _ => &["openid", "profile", "email"],
    };
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) fn route(i: usize, raw: &RawRoute, names: &[ProviderName], p: &mut Problems) -> Option<RouteRule> {
    let base = format!("routes[{i}]");
    if !raw.prefix.starts_with('/') {
        p.add(format!("{base}.prefix"), format!("\"{}\" must start with '/'", raw.prefix));
    }
    let methods = raw.methods.as_ref().map(|ms| {
        ms.iter()
            .filter_map(|m| {
                let parsed = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("\"{m}\" is not an HTTP method"));
                p.check(format!("{base}.methods"), parsed)
            })
            .collect::<Vec<_>>()
    });
    let require = match &raw.require {
        RawRequire::Word(w) if w == "any" => Require::Any,
        RawRequire::Word(w) => {
            p.add(format!("{base}.require"), format!("\"{w}\" is not valid; use \"any\" or a list of provider names"));
            return None;
        }
        RawRequire::List(list) => {
            if list.is_empty() {
                p.add(format!("{base}.require"), "is an empty list; name at least one provider or use \"any\"");
            }
            let mut out = Vec::new();
            for n in list {
                match names.iter().find(|k| k.as_str() == n) {
                    Some(k) => out.push(k.clone()),
                    None => p.add(format!("{base}.require"), unknown_provider(n, names)),
                }
            }
            Require::Providers(out)
        }
    };
    let allow = raw.allow.as_ref().map(|a| allow_rule(&base, a, p));
    if raw.obo_scopes.iter().any(|s| s.trim().is_empty()) {
        p.add(format!("{base}.obo_scopes"), "holds an empty scope");
    }
    Some(RouteRule {
        prefix: raw.prefix.clone(),
        methods,
        require,
        forward_access_token: raw.forward_access_token,
        allow,
        obo_scopes: raw.obo_scopes.clone(),
    })
}

/// A route with `obo_scopes` exchanges Entra tokens with the provider's client secret: every
/// provider that can sign a request in there must be an Entra provider with one.
pub(super) fn check_obo_routes(raw: &[RawRoute], routes: &[RouteRule], providers: &[ProviderConfig], p: &mut Problems) {
    for rule in routes.iter().filter(|r| !r.obo_scopes.is_empty()) {
        let Some(index) = raw.iter().position(|r| r.prefix == rule.prefix) else { continue };
        let unfit: Vec<&str> = providers
            .iter()
            .filter(|pc| match &rule.require {
                Require::Any => true,
                Require::Providers(list) => list.contains(&pc.name),
            })
            .filter(|pc| !matches!(pc.kind, ProviderKind::Entra { .. }) || pc.client_secret.is_none())
            .map(|pc| pc.name.as_str())
            .collect();
        if !unfit.is_empty() {
            p.add(
                format!("routes[{index}].obo_scopes"),
                format!("needs Entra providers with a client_secret; not: {}", unfit.join(", ")),
            );
        }
    }
}

fn unknown_provider(name: &str, names: &[ProviderName]) -> String {
    let known: Vec<&str> = names.iter().map(ProviderName::as_str).collect();
    if known.is_empty() {
        format!("provider \"{name}\" is not defined; no [providers.*] table exists")
    } else {
        format!("provider \"{name}\" is not defined; defined: {}", known.join(", "))
    }
}

pub(super) fn teams(raw: &RawTeams, names: &[ProviderName], p: &mut Problems) -> Option<TeamsConfig> {
    if !raw.bot_path.starts_with('/') {
        p.add("teams.bot_path", format!("\"{}\" must start with '/'", raw.bot_path));
    }
    if raw.app_id.trim().is_empty() {
        p.add("teams.app_id", "is empty");
    }
    let provider = names.iter().find(|k| k.as_str() == raw.provider).cloned();
    if provider.is_none() {
        p.add("teams.provider", unknown_provider(&raw.provider, names));
    }
    let metadata = raw.openid_metadata.clone().or_else(|| Some(BOT_FRAMEWORK_METADATA.to_owned()));
    let openid_metadata = url_field(p, "teams.openid_metadata".to_owned(), &metadata, true).flatten();
    let authority = raw.authority.clone().or_else(|| Some(DEFAULT_ENTRA_AUTHORITY.to_owned()));
    let authority = url_field(p, "teams.authority".to_owned(), &authority, true).flatten();
    let tenant = match (&raw.tenant, authority) {
        (Some(t), _) if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)) => {
            p.add("teams.tenant", format!("\"{t}\" is not a tenant id"));
            None
        }
        (Some(t), Some(a)) => Some((t.to_ascii_lowercase(), a)),
        _ => None,
    };
    if raw.authority.is_some() && raw.tenant.is_none() {
        p.add("teams.authority", "is only used with teams.tenant");
    }
    Some(TeamsConfig {
        tenant,
        bot_path: raw.bot_path.clone(),
        provider: provider?,
        app_id: raw.app_id.clone(),
        verify_bot_token: raw.verify_bot_token,
        openid_metadata: openid_metadata?,
        code_ttl: p.check("teams.code_ttl", Ttl::new(raw.code_ttl))?,
        pass_through: raw.pass_through,
        sso: raw.sso,
        scopes: raw.scopes.clone(),
    })
}
