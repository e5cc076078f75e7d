//! A stand-in OpenTelemetry collector: OTLP/HTTP on `127.0.0.1`, `POST /v1/traces` with a
//! protobuf `ExportTraceServiceRequest`, decoded with `opentelemetry-proto` (the gateway's own
//! message types, so a wrong encoding fails to decode here). Every span is kept; stops on drop.
//!
//! ```text
//! OtlpReceiver::start()   .endpoint() "http://127.0.0.1:PORT/v1/traces"   .spans() every span so far
//! ```

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ports;

/// Largest export request read.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How many binds are tried before giving up.
const BIND_ATTEMPTS: u32 = 50;

/// One received span, ids as lower-case hex.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// Attributes, every value as text.
    pub attributes: Vec<(String, String)>,
}

impl ReceivedSpan {
    /// The value of attribute `key`, as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The collector stand-in.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    shutdown: watch::Sender<bool>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&any_value::Value>) -> String {
    match value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

impl OtlpReceiver {
    /// Listens on a free `127.0.0.1` port.
    pub async fn start() -> anyhow::Result<Self> {
        for _ in 0..BIND_ATTEMPTS {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.context("otlp receiver: cannot bind")?;
            let addr = listener.local_addr().context("otlp receiver: no address")?;
            if ports::reserve(addr.port()) {
                let spans = Arc::new(Mutex::new(Vec::new()));
                let (shutdown, stop) = watch::channel(false);
                tokio::spawn(accept_loop(listener, Arc::clone(&spans), stop));
                return Ok(Self { addr, spans, shutdown });
            }
        }
        bail!("otlp receiver: every port the system offered was already handed out")
    }

    /// The `[telemetry] otlp_endpoint` value for a gateway.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, spans: Arc<Mutex<Vec<ReceivedSpan>>>, stop: watch::Receiver<bool>) {
    crate::http_serve::serve(listener, stop, || {
        let spans = Arc::clone(&spans);
        service_fn(move |req| {
            let spans = Arc::clone(&spans);
            async move { Ok::<_, Infallible>(handle(req, &spans).await) }
        })
    })
    .await;
}

fn answer(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}

async fn handle(req: Request<Incoming>, spans: &Mutex<Vec<ReceivedSpan>>) -> Response<Full<Bytes>> {
    let protobuf = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v == "application/x-protobuf");
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" || !protobuf {
        return answer(404);
    }
    let Ok(body) = Limited::new(req.into_body(), MAX_BODY).collect().await else { return answer(400) };
    let Ok(request) = ExportTraceServiceRequest::decode(body.to_bytes()) else { return answer(400) };
    let mut kept = spans.lock().unwrap_or_else(PoisonError::into_inner);
    for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
        kept.push(ReceivedSpan {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
            name: span.name.clone(),
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), text(kv.value.as_ref().and_then(|v| v.value.as_ref()))))
                .collect(),
        });
    }
    answer(200)
}
