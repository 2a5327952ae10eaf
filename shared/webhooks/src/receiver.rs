//! A webhook receiver on this machine, as a tenant's endpoint would be:
//! it checks each event's signature and keeps what arrived. `atlas demo`
//! runs one to count deliveries and their lag; the tests use it as the
//! far end of every delivery.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::signature::{self, EVENT_ID_HEADER, LAG_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// One request that reached the receiver.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: Option<String>,
    /// Whether its signature verified with the receiver's secret (false
    /// when none was set).
    pub signature_ok: bool,
    pub timestamp: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub body: serde_json::Value,
    pub at: DateTime<Utc>,
    /// The status the receiver answered with.
    pub answered: u16,
}

#[derive(Default)]
struct State {
    secret: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
    /// What to answer; 0 means 204.
    status: AtomicU16,
}

/// Serves on a local port until dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `addr` (port 0: any free port).
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let served = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so dropping the receiver closes
            // them too: a stopped endpoint must not answer on a kept-alive
            // connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let state = served.clone();
                connections.spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(receive(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The URL to register: plain http to loopback, which a deployment
    /// accepts only with `ATLAS_WEBHOOK_ALLOW_LOOPBACK`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The secret signatures are checked with (the registration's answer).
    pub fn verify_with(&self, secret: &str) {
        *self.state.secret.lock().expect("secret lock") = Some(secret.to_owned());
    }

    /// Answer every request from now on with `status` (a failing endpoint).
    pub fn answer_with(&self, status: u16) {
        self.state.status.store(status, Ordering::Relaxed);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("received lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    state: &State,
    req: http::Request<Incoming>,
) -> http::Response<Full<bytes::Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (event_id, sig, timestamp, lag) = (
        header(EVENT_ID_HEADER),
        header(SIGNATURE_HEADER),
        header(TIMESTAMP_HEADER).and_then(|t| t.parse().ok()),
        header(LAG_HEADER).and_then(|l| l.parse().ok()),
    );
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let secret = state.secret.lock().expect("secret lock").clone();
    let signature_ok = match (secret, timestamp, sig) {
        (Some(secret), Some(ts), Some(sig)) => signature::verify(&secret, ts, &body, &sig),
        _ => false,
    };
    let answered = match state.status.load(Ordering::Relaxed) {
        0 => 204,
        s => s,
    };
    state
        .received
        .lock()
        .expect("received lock")
        .push(Received {
            event_id,
            signature_ok,
            timestamp,
            lag_seconds: lag,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            at: Utc::now(),
            answered,
        });
    let mut resp = http::Response::new(Full::new(bytes::Bytes::new()));
    *resp.status_mut() =
        http::StatusCode::from_u16(answered).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp
}
