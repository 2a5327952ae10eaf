//! A stand-in for API Gateway's HTTP API on one machine. It checks the
//! bearer token like the JWT authorizer, turns the HTTP request into the
//! same payload-2.0 event Lambda would receive, and calls the handler that
//! the function itself runs. So `atlas dev` exercises the Lambda code path.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tokio::net::TcpListener;

use crate::jwt::{JwtError, Signer};
use atlas_http::ApiError;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
pub type Handler = Arc<dyn Fn(Request) -> HandlerFuture + Send + Sync>;

/// A page for a browser, which sends no token: it is served without one,
/// and may mint one of its own with the gateway's signer for the API calls
/// its script makes. It answers the HTML.
pub type Page = Arc<dyn Fn(&Signer) -> Result<String, JwtError> + Send + Sync>;

/// Routes by path prefix, as API Gateway routes to integrations; pages by
/// their exact path.
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<(&'static str, Handler)>,
    pages: Vec<(&'static str, Page)>,
}

impl Routes {
    pub fn route(mut self, prefix: &'static str, handler: Handler) -> Self {
        self.routes.push((prefix, handler));
        self
    }

    pub fn page(mut self, path: &'static str, page: Page) -> Self {
        self.pages.push((path, page));
        self
    }

    fn find(&self, path: &str) -> Option<&Handler> {
        self.routes
            .iter()
            .find(|(p, _)| path == *p || path.starts_with(&format!("{p}/")))
            .map(|(_, h)| h)
    }
}

pub struct LocalGateway {
    pub routes: Routes,
    pub signer: Arc<Signer>,
    /// API Gateway's own payload cap is 10 MB; the handler applies its own
    /// (smaller) limit, this one only stops a runaway client.
    pub max_body_bytes: usize,
    /// The Content-Security-Policy sent with every page.
    pub page_policy: &'static str,
}

fn html_response(html: String, policy: &str) -> Response<Body> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(http::header::CONTENT_SECURITY_POLICY, policy)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Body::Text(html))
        .expect("static headers are valid")
}

impl LocalGateway {
    /// Serves until the future `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let this = Arc::new(self);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => return Ok(()),
            };
            let this = this.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.handle(req, peer).await) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "connection closed");
                }
            });
        }
    }

    async fn handle(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> http::Response<Full<bytes::Bytes>> {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let resp = match self.dispatch(req, peer).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        tracing::info!(%method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
        let (parts, body) = resp.into_parts();
        let bytes = match body {
            Body::Empty => bytes::Bytes::new(),
            Body::Text(t) => t.into(),
            Body::Binary(b) => b.into(),
            _ => bytes::Bytes::new(),
        };
        http::Response::from_parts(parts, Full::new(bytes))
    }

    async fn dispatch(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, ApiError> {
        if let Some((_, page)) = self
            .routes
            .pages
            .iter()
            .find(|(p, _)| *p == req.uri().path())
        {
            return match *req.method() {
                http::Method::GET | http::Method::HEAD => {
                    let html = page(&self.signer)
                        .map_err(|e| ApiError::unavailable(format!("the page's token: {e}")))?;
                    Ok(html_response(html, self.page_policy))
                }
                _ => Err(ApiError::method_not_allowed("GET")),
            };
        }
        let handler = self
            .routes
            .find(req.uri().path())
            .ok_or_else(|| ApiError::not_found("no such route"))?;
        let claims = self.authorize(&req)?;
        let event = self.event(req, peer, &claims).await?;
        let request = lambda_http::request::from_str(&event.to_string()).map_err(|e| {
            ApiError::bad_request("bad_request", format!("request could not be read: {e}"))
        })?;
        Ok(handler(request).await)
    }

    fn authorize(&self, req: &http::Request<Incoming>) -> Result<crate::jwt::Claims, ApiError> {
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> (make one with `atlas token --tenant ID`)"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?;
        self.signer
            .verify(token.trim())
            .map_err(|e| ApiError::unauthorized(e.to_string()))
    }

    /// The payload-2.0 event API Gateway would send for this request.
    async fn event(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
        claims: &crate::jwt::Claims,
    ) -> Result<serde_json::Value, ApiError> {
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, self.max_body_bytes)
            .collect()
            .await
            .map_err(|_| {
                ApiError::too_large(
                    "body_too_large",
                    format!("request body exceeds {} bytes", self.max_body_bytes),
                )
            })?;
        let body = body.to_bytes();
        let mut headers = serde_json::Map::new();
        for (name, value) in &parts.headers {
            if name == http::header::AUTHORIZATION {
                continue;
            }
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().to_owned(), json!(v));
            }
        }
        let (text, b64) = match std::str::from_utf8(&body) {
            Ok(t) => (t.to_owned(), false),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&body),
                true,
            ),
        };
        Ok(payload(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            headers,
            (&text, b64),
            &peer.ip().to_string(),
            claims,
        ))
    }
}

/// A payload-2.0 API Gateway event with the JWT authorizer's claims.
fn payload(
    method: &str,
    path: &str,
    query: &str,
    headers: serde_json::Map<String, serde_json::Value>,
    (body, base64): (&str, bool),
    source_ip: &str,
    claims: &crate::jwt::Claims,
) -> serde_json::Value {
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "localhost", "requestId": format!("local-{}", now.timestamp_nanos_opt().unwrap_or(0)),
            "routeKey": "$default", "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": ""},
            "authorizer": {"jwt": {"claims": {
                "sub": claims.sub, "iss": claims.iss, "tenant_id": claims.tenant_id,
                "scope": claims.scope,
            }, "scopes": claims.scope.split_whitespace().collect::<Vec<_>>()}}
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}

/// The request a handler would get from API Gateway for `tenant`, built in
/// process: for benchmarks that time the handler without a network hop.
pub fn in_process_request(
    tenant: i64,
    method: &str,
    path_and_query: &str,
    body: Option<&str>,
) -> Result<Request, lambda_http::Error> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let claims = crate::jwt::Claims {
        sub: "in-process".into(),
        iss: "atlas-local".into(),
        tenant_id: tenant.to_string(),
        scope: crate::jwt::scope_claim(&atlas_http::Scope::ALL),
        iat: 0,
        exp: 0,
    };
    let mut headers = serde_json::Map::new();
    headers.insert("content-type".into(), json!("application/json"));
    let event = payload(
        method,
        path,
        query,
        headers,
        (body.unwrap_or(""), false),
        "127.0.0.1",
        &claims,
    );
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

/// Wraps an async function as a gateway handler.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}
