//! Posting one event to one destination, signed.

use std::sync::Arc;
use std::time::Duration;

use crate::destination::{AddressPolicy, Destination, DestinationError, PolicyResolver};
use crate::signature::{self, EVENT_ID_HEADER, LAG_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// One event on its way: its id (the receiver's key for deduplication),
/// its JSON body, and the processing lag it reports.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub event_id: &'a str,
    pub body: &'a [u8],
    pub lag_seconds: f64,
}

/// Why a delivery did not succeed; each is worth a retry except
/// `Refused`, which the next attempt meets again unless DNS changes.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Refused(#[from] DestinationError),
    #[error("the endpoint answered {0}")]
    Status(u16),
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("could not reach the endpoint: {0}")]
    Transport(String),
}

/// The HTTP client deliveries go through:
/// - its resolver connects only to addresses the policy allows;
/// - redirects are not followed (a 3xx is a failed delivery), since the
///   next hop was never checked;
/// - no proxy from the environment, and a bound on each attempt.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: AddressPolicy,
    timeout: Duration,
}

impl Sender {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    const USER_AGENT: &str = concat!("atlas-webhooks/", env!("CARGO_PKG_VERSION"));

    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(policy)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(Self::USER_AGENT)
            .build()
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            policy,
            timeout,
        })
    }

    /// Posts `delivery` to `dest`, signed with `secret`; `Ok` is the
    /// endpoint's 2xx status. The answer's body is not read.
    pub async fn send(
        &self,
        dest: &Destination,
        secret: &str,
        delivery: Delivery<'_>,
    ) -> Result<u16, DeliveryError> {
        // An address literal never reaches the resolver.
        let dest = Destination::parse(dest.as_str(), self.policy)?;
        let timestamp = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(dest.url().clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature::sign(secret, timestamp, delivery.body),
            )
            .header(EVENT_ID_HEADER, delivery.event_id)
            .header(LAG_HEADER, format!("{:.3}", delivery.lag_seconds))
            .body(delivery.body.to_vec())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
            Ok(resp) => Err(DeliveryError::Status(resp.status().as_u16())),
            Err(e) if e.is_timeout() => Err(DeliveryError::Timeout(self.timeout)),
            Err(e) => Err(self.transport(e)),
        }
    }

    /// The innermost cause, which names what went wrong (the resolver's
    /// refusal, a refused connection) better than reqwest's outer message.
    fn transport(&self, e: reqwest::Error) -> DeliveryError {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        DeliveryError::Transport(cause.to_string())
    }
}
