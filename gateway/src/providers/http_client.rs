//! The function-shaped HTTP client every provider call goes through: timeouts, bounded bodies,
//! and an in-process route to the built-in `dev` provider.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// A request to a provider.
pub type HttpRequest = http::Request<Vec<u8>>;
/// A provider's answer, body already read (and bounded).
pub type HttpResponse = http::Response<Vec<u8>>;

/// Largest provider response body read (token, userinfo, JWKS, discovery documents).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Total time for one provider call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to connect to a provider.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a provider call failed. Never carries a request or response body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Could not connect.
    #[error("connection failed")]
    Connect,
    /// The body exceeded [`MAX_RESPONSE_BYTES`].
    #[error("response body larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// Anything else at the transport level.
    #[error("transport error: {0}")]
    Transport(String),
}

/// Sends one request and reads the whole (bounded) answer.
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends `req`.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// The network client (reqwest over rustls with the Mozilla roots).
pub struct NetClient {
    inner: reqwest::Client,
}

impl NetClient {
    /// A client with the gateway's timeouts; redirects are never followed (RFC 6749 §3.2).
    pub fn new() -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        Ok(Self { inner })
    }
}

fn classify(e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_connect() {
        HttpError::Connect
    } else {
        HttpError::Transport(e.without_url().to_string())
    }
}

#[async_trait]
impl HttpClient for NetClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = parts.uri.to_string();
        let mut resp =
            self.inner.request(parts.method, url).headers(parts.headers).body(body).send().await.map_err(classify)?;
        if resp.content_length().is_some_and(|l| l > MAX_RESPONSE_BYTES as u64) {
            return Err(HttpError::TooLarge);
        }
        let mut builder = http::Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            builder = builder.header(k, v);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| HttpError::Transport(e.to_string()))
    }
}

/// Serves requests to one URL prefix in-process (the `dev` provider), everything else over the network.
pub struct RoutedClient {
    net: NetClient,
    local: Option<(String, Arc<dyn HttpClient>)>,
}

impl RoutedClient {
    /// Routes URLs starting with `prefix` to `local`.
    pub fn new(net: NetClient, local: Option<(String, Arc<dyn HttpClient>)>) -> Self {
        Self { net, local }
    }
}

#[async_trait]
impl HttpClient for RoutedClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if let Some((prefix, local)) = &self.local {
            if req.uri().to_string().starts_with(prefix.as_str()) {
                return local.send(req).await;
            }
        }
        self.net.send(req).await
    }
}
