//! The sample add-in server of the demo: a task pane page, and `/api/whoami` echoing the
//! identity headers it received. It has no idea OAuth exists.

use std::convert::Infallible;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

const TASKPANE_HTML: &str = include_str!("../../assets/demo/taskpane.html");
const TASKPANE_JS: &str = include_str!("../../assets/demo/taskpane.js");

/// The sample upstream on `addr`.
pub struct SampleAddin {
    addr: String,
}

impl SampleAddin {
    /// Listens on `addr` once started.
    pub fn new(addr: String) -> Self {
        Self { addr }
    }
}

fn respond(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, ct, body): (u16, &str, Bytes) = match req.uri().path() {
        "/" | "/taskpane.html" => (200, "text/html; charset=utf-8", Bytes::from_static(TASKPANE_HTML.as_bytes())),
        "/taskpane.js" => (200, "application/javascript", Bytes::from_static(TASKPANE_JS.as_bytes())),
        "/api/whoami" => {
            let mut seen = serde_json::Map::new();
            for (k, v) in req.headers() {
                let name = k.as_str();
                if name.starts_with("x-forwarded-") && name != "x-forwarded-access-token" {
                    seen.insert(name.to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned().into());
                }
            }
            (200, "application/json", Bytes::from(serde_json::json!({"upstream_saw": seen}).to_string()))
        }
        "/healthz" => (200, "text/plain", Bytes::from_static(b"ok")),
        _ => (404, "text/plain", Bytes::from_static(b"not found")),
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(ct) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

#[async_trait]
impl BackgroundService for SampleAddin {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match tokio::net::TcpListener::bind(&self.addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %self.addr, error = %e, "sample add-in cannot listen");
                return;
            }
        };
        loop {
            let stream = tokio::select! {
                _ = shutdown.changed() => return,
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            };
            tokio::spawn(async move {
                let svc = service_fn(|req| async move { Ok::<_, Infallible>(respond(&req)) });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    }
}
