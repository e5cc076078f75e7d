//! The export task: drains the queue into OTLP `ExportTraceServiceRequest`s (protobuf, the
//! OTLP/HTTP default) posted to the endpoint. It runs on the server's own tokio runtime as a
//! background service; a slow or failing collector only delays or loses spans, never requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Status};
use prost::Message as _;
use tokio::sync::watch;

use super::{Kind, Span, Telemetry, Value};

/// Most spans in one request to the collector.
pub const BATCH: usize = 512;
/// Queued spans wait at most this long for their batch.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest a post to the collector may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attribute(key: &str, value: &Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(i) => any_value::Value::IntValue(*i),
    };
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// The OTLP request of `spans`, from service `gateway`.
pub fn encode(spans: &[Span]) -> Vec<u8> {
    let spans = spans
        .iter()
        .map(|s| opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: s.name.clone(),
            kind: match s.kind {
                Kind::Server => span::SpanKind::Server as i32,
                Kind::Internal => span::SpanKind::Internal as i32,
            },
            start_time_unix_nano: nanos(s.start),
            end_time_unix_nano: nanos(s.end),
            attributes: s.attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
            status: Some(Status {
                code: if s.error { status::StatusCode::Error } else { status::StatusCode::Unset } as i32,
                message: String::new(),
            }),
            ..Default::default()
        })
        .collect();
    let resource = Resource {
        attributes: vec![attribute("service.name", &Value::Str("gateway".to_owned()))],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "gateway".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans { scope: Some(scope), spans, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}

/// With `[telemetry] otlp_endpoint`: the export handle, its task added to `server` as a
/// background service (the server's runtime, its shutdown). Without: `None`, nothing built.
pub fn start(config: &crate::config::TelemetryConfig, server: &mut pingora::server::Server) -> Option<Arc<Telemetry>> {
    let telemetry = Arc::new(Telemetry::new(config.otlp_endpoint.clone()?));
    let task = TraceExport(Arc::clone(&telemetry));
    server.add_service(pingora::services::background::background_service("trace export", task));
    Some(telemetry)
}

/// The export task as a background service of the server.
pub struct TraceExport(pub Arc<Telemetry>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for TraceExport {
    async fn start(&self, shutdown: pingora::server::ShutdownWatch) {
        run(Arc::clone(&self.0), shutdown).await;
    }
}

/// Exports until `shutdown`, then sends what is queued and returns.
pub async fn run(telemetry: Arc<Telemetry>, mut shutdown: watch::Receiver<bool>) {
    let Some(mut rx) = telemetry.rx.lock().ok().and_then(|mut r| r.take()) else { return };
    let client = match reqwest::Client::builder().timeout(POST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "trace export disabled: no HTTP client");
            return;
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                while let Ok(span) = rx.try_recv() {
                    batch.push(span);
                    if batch.len() >= BATCH { break; }
                }
                post(&client, &telemetry, &mut batch).await;
                return;
            }
            span = rx.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= BATCH {
                        post(&client, &telemetry, &mut batch).await;
                    }
                }
                None => return,
            },
            _ = tick.tick() => {
                post(&client, &telemetry, &mut batch).await;
                telemetry.prune_journal();
            }
        }
    }
}

async fn post(client: &reqwest::Client, telemetry: &Telemetry, batch: &mut Vec<Span>) {
    if batch.is_empty() {
        return;
    }
    let body = encode(batch);
    let count = batch.len();
    batch.clear();
    let sent = client
        .post(telemetry.endpoint.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(status = r.status().as_u16(), spans = count, "trace export refused by the collector"),
        Err(e) => tracing::warn!(error = %e.without_url(), spans = count, "trace export failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_encode_as_an_otlp_request_with_their_ids_and_parent() {
        let now = SystemTime::now();
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            name: "GET upstream".into(),
            kind: Kind::Server,
            start: now,
            end: now,
            attributes: vec![("http.response.status_code", Value::Int(200))],
            error: false,
        };
        let decoded = ExportTraceServiceRequest::decode(encode(&[span]).as_slice()).unwrap();
        let s = &decoded.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            (s.trace_id.as_slice(), s.span_id.as_slice(), s.parent_span_id.as_slice()),
            (&[1; 16][..], &[2; 8][..], &[3; 8][..])
        );
        assert_eq!(s.attributes[0].key, "http.response.status_code");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let t = Telemetry::new(url::Url::parse("http://127.0.0.1:9/v1/traces").unwrap());
        let now = SystemTime::now();
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            name: "x".into(),
            kind: Kind::Internal,
            start: now,
            end: now,
            attributes: Vec::new(),
            error: false,
        };
        for _ in 0..super::super::QUEUE + 3 {
            t.record(span.clone());
        }
        assert_eq!(t.dropped(), 3);
    }
}
