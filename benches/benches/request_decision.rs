//! The whole per-request decision of `proxy::Gateway` minus Pingora's I/O, composed from the
//! same public functions in the same order as `request_filter` + `upstream_request_filter`:
//! strip → Host check → classify → route rule → `AuthService::authorize` (cookie verify + store
//! lookup) → forwarding + identity headers. Plus the `logging` phase's metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: failing fast is the point")]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use gateway::auth::guard::Access;
use gateway::auth::AuthService;
use gateway::config::Config;
use gateway::identity::{HeaderPolicy, WireNames};
use gateway::metrics::Metrics;
use gateway::proxy::forwarded;
use gateway::proxy::route::{classify, Route};
use gateway::proxy::rules::{normalize_path, RouteRules};
use gateway_benches as fx;
use http::Request;

/// What the proxy holds from config, as `Gateway::new` builds it.
struct Decider {
    policy: HeaderPolicy,
    wire_names: WireNames,
    config: Config,
    rules: RouteRules,
    auth: std::sync::Arc<AuthService>,
}

impl Decider {
    /// The status the gateway answers with (200: forwarded upstream).
    async fn decide(&self, req: &mut Request<()>) -> u16 {
        let client_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let trusted = forwarded::is_trusted(client_ip, &self.config.server.trusted_proxies);
        for name in self.policy.headers_to_strip(req.headers().keys(), trusted) {
            req.headers_mut().remove(&name);
        }
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
        if !forwarded::is_allowed_host(host.as_deref(), &self.config.server.allowed_hosts, 80) {
            return 421;
        }
        let path = req.uri().path().to_owned();
        let route = classify(&path, self.config.channel.socketio_path.as_deref());
        black_box(route.label());
        if route != Route::Upstream {
            return 0;
        }
        let Ok(normalized) = normalize_path(&path) else { return 400 };
        let rule = self.rules.find(&normalized, req.method());
        let forward_token = rule.is_some_and(|r| r.forward_access_token);
        let tokens = match self.auth.authorize(req.headers(), rule).await {
            Access::Allowed(tokens) => tokens,
            Access::Denied(refusal) => return gateway::respond::Answer::from(black_box(refusal)).status(),
        };
        let host_value = req.headers().get(http::header::HOST).cloned();
        let values = forwarded::forwarding_values(client_ip, false, host_value.as_ref(), None);
        let headers = req.headers_mut();
        for (name, value) in values {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        if let Some(tokens) = &tokens {
            for (name, value) in self.wire_names.headers(tokens, forward_token) {
                if let Ok(name) = http::HeaderName::from_bytes(&name) {
                    headers.insert(name, value);
                }
            }
        }
        200
    }
}

fn request(path: &str, cookie: Option<&str>) -> Request<()> {
    let mut req = Request::get(path).body(()).unwrap();
    *req.headers_mut() = fx::browser_headers(cookie);
    req
}

/// Registers this file's benchmarks.
pub(crate) fn bench(c: &mut Criterion) {
    let rt = fx::runtime();
    let config = fx::config();
    let signed_in = rt.block_on(fx::signed_in(&config, 9_999));
    let decider = Decider {
        policy: HeaderPolicy::from_config(&config.identity),
        wire_names: WireNames::new(&config.identity),
        rules: RouteRules::new(config.routes.clone()),
        auth: signed_in.auth,
        config,
    };
    let cookie = signed_in.cookie;
    let cases = [
        ("public", request("/index.html", None), 200),
        ("public_signed_in", request("/index.html", Some(&cookie)), 200),
        ("authenticated", request("/api/items?page=2", Some(&cookie)), 200),
        (
            "authenticated_spoofed",
            {
                let mut r = request("/api/items?page=2", Some(&cookie));
                fx::add_spoofed_identity(r.headers_mut());
                r
            },
            200,
        ),
        ("denied", request("/api/items", None), 401),
    ];
    let mut g = c.benchmark_group("request_decision");
    for (name, req, status) in &cases {
        let mut probe = clone(req);
        assert_eq!(rt.block_on(decider.decide(&mut probe)), *status, "{name}");
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter_batched(
                || clone(req),
                |mut r| {
                    let decider = &decider;
                    async move { decider.decide(&mut r).await }
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The `logging` phase: the request counter and the duration histogram.
    let metrics = Metrics::new().unwrap();
    g.bench_function("logging_metrics", |b| {
        b.iter(|| metrics.observe_request(black_box("upstream"), 200, Duration::from_micros(250)))
    });
    g.finish();
}

fn clone(req: &Request<()>) -> Request<()> {
    let mut r = Request::builder().method(req.method()).uri(req.uri()).body(()).unwrap();
    *r.headers_mut() = req.headers().clone();
    r
}
