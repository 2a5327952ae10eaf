//! A tenant's webhooks in PostgreSQL (`webhooks`, migration V17), read and
//! written as the tenant under row-level security.

use std::sync::OnceLock;
use std::time::Instant;

use atlas_core::{AttributeName, TenantId};
use atlas_store::{Pool, StoreError, begin_tenant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::destination::{AddressPolicy, Destination, DestinationError};
use crate::sender::{Delivery, DeliveryError, Sender};

/// The events a webhook may subscribe to.
pub const EVENT_TYPES: &[&str] = &["entity.updated"];
/// Webhooks per tenant: each costs a delivery per matching change.
pub const MAX_PER_TENANT: i64 = 25;
/// Attribute names in one webhook's filter.
pub const MAX_ATTRIBUTES: usize = 100;

/// Advisory lock namespace ("ATWH") that serializes a tenant's
/// registrations, so the per-tenant limit holds under concurrency.
const REGISTER_LOCK: i32 = 0x4154_5748;

/// `wh_` and 32 hex digits: random, so ids say nothing about other
/// tenants' webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WebhookId(String);

impl WebhookId {
    const PREFIX: &str = "wh_";

    /// `None` for anything that is not an id's form.
    pub fn parse(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix(Self::PREFIX)?;
        (hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(raw.to_owned()))
    }

    fn random() -> Result<Self, RegistryError> {
        Ok(Self(format!("{}{}", Self::PREFIX, random_hex(16)?)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lowercase hex of `n` random bytes from the system's generator.
fn random_hex(n: usize) -> Result<String, RegistryError> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RegistryError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A registration, parsed from its JSON body: `{"url", "events",
/// "attributes"?}`. The URL's form is checked here; `Registry::create`
/// resolves its host.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub destination: Destination,
    pub events: Vec<String>,
    /// `None`: changes of any hot attribute.
    pub attributes: Option<Vec<AttributeName>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhookBody {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    attributes: Option<Vec<String>>,
}

impl NewWebhook {
    pub fn parse(body: &[u8], policy: AddressPolicy) -> Result<Self, RegistryError> {
        let invalid = |code, message: String| RegistryError::Invalid { code, message };
        let shape = "expected {\"url\": string, \"events\": [\"entity.updated\"], \"attributes\"?: [string]}";
        let raw: NewWebhookBody = serde_json::from_slice(body)
            .map_err(|e| invalid("invalid_body", format!("{shape}: {e}")))?;
        // serde fills a struct from an array too, by position.
        if !atlas_http::is_json_object(body) {
            return Err(invalid("invalid_body", shape.into()));
        }
        let destination = Destination::parse(&raw.url, policy)?;
        if raw.events.is_empty() {
            return Err(invalid(
                "invalid_events",
                "events must name at least one event type".into(),
            ));
        }
        let mut events = Vec::new();
        for e in raw.events {
            if !EVENT_TYPES.contains(&e.as_str()) {
                return Err(invalid(
                    "invalid_events",
                    format!("unknown event type {e:?}: one of {EVENT_TYPES:?}"),
                ));
            }
            if !events.contains(&e) {
                events.push(e);
            }
        }
        let attributes = match raw.attributes {
            None => None,
            Some(names) if names.is_empty() || names.len() > MAX_ATTRIBUTES => {
                return Err(invalid(
                    "invalid_attributes",
                    format!(
                        "attributes, when given, names 1 to {MAX_ATTRIBUTES} attributes (leave it out for all)"
                    ),
                ));
            }
            Some(names) => {
                let mut out: Vec<AttributeName> = Vec::new();
                for n in names {
                    let name = AttributeName::parse(&n)
                        .map_err(|e| invalid("invalid_attributes", e.to_string()))?;
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
                Some(out)
            }
        };
        Ok(Self {
            destination,
            events,
            attributes,
        })
    }
}

/// A registered webhook as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    pub attributes: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

/// The answer to a registration: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

/// A delivery that never succeeded, kept for its tenant to see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub entity_id: i64,
    pub attempts: i32,
    /// The endpoint's last HTTP status, when it answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
    /// The event as it would have been delivered.
    pub body: serde_json::Value,
}

/// Dead letters listed at once, newest first.
pub const DEAD_LETTERS_SHOWN: i64 = 100;

/// What a test event met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestOutcome {
    pub event_id: String,
    pub delivered: bool,
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("a tenant may register at most {MAX_PER_TENANT} webhooks: delete one first")]
    TooMany,
    #[error("no webhook {0}")]
    NotFound(String),
    #[error("the system's random generator failed")]
    Random,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Registration, listing, removal and test events of tenants' webhooks.
pub struct Registry {
    pool: Pool,
    policy: AddressPolicy,
    /// Built on the first test event: most query-API containers never
    /// send one, and a client costs its TLS set-up at cold start.
    sender: OnceLock<Sender>,
}

const COLUMNS: &str = "webhook_id, url, events, attributes, created_at";

fn webhook(row: &tokio_postgres::Row) -> Result<Webhook, RegistryError> {
    let id: String = row.get(0);
    Ok(Webhook {
        id: WebhookId::parse(&id).ok_or_else(|| RegistryError::NotFound(id))?,
        url: row.get(1),
        events: row.get(2),
        attributes: row.get(3),
        created_at: row.get(4),
    })
}

impl Registry {
    pub fn new(pool: Pool, policy: AddressPolicy) -> Self {
        Self {
            pool,
            policy,
            sender: OnceLock::new(),
        }
    }

    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// Registers `new` after resolving its host under the policy.
    pub async fn create(
        &self,
        tenant: TenantId,
        new: NewWebhook,
    ) -> Result<Created, RegistryError> {
        let destination = Destination::check(new.destination.as_str(), self.policy).await?;
        let id = WebhookId::random()?;
        let secret = format!("whsec_{}", random_hex(32)?);
        let attributes: Option<Vec<&str>> = new
            .attributes
            .as_ref()
            .map(|names| names.iter().map(AttributeName::as_str).collect());
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = begin_tenant(&mut client, tenant).await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, atlas_projection_lock_key($2))",
            &[&REGISTER_LOCK, &tenant.get()],
        )
        .await?;
        let count: i64 = tx
            .query_one(
                "SELECT count(*) FROM webhooks WHERE tenant_id = $1",
                &[&tenant.get()],
            )
            .await?
            .get(0);
        if count >= MAX_PER_TENANT {
            return Err(RegistryError::TooMany);
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO webhooks (tenant_id, webhook_id, url, events, attributes, secret) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
                ),
                &[
                    &tenant.get(),
                    &id.as_str(),
                    &destination.as_str(),
                    &new.events,
                    &attributes,
                    &secret,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(Created {
            webhook: webhook(&row)?,
            secret,
        })
    }

    pub async fn list(&self, tenant: TenantId) -> Result<Vec<Webhook>, RegistryError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let rows = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 \
                     ORDER BY created_at, webhook_id"
                ),
                &[&tenant.get()],
            )
            .await?;
        tx.commit().await?;
        rows.iter().map(webhook).collect()
    }

    pub async fn get(&self, tenant: TenantId, id: &WebhookId) -> Result<Webhook, RegistryError> {
        self.with_secret(tenant, id).await.map(|(w, _)| w)
    }

    async fn with_secret(
        &self,
        tenant: TenantId,
        id: &WebhookId,
    ) -> Result<(Webhook, String), RegistryError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, secret FROM webhooks WHERE tenant_id = $1 AND webhook_id = $2"
                ),
                &[&tenant.get(), &id.as_str()],
            )
            .await?;
        tx.commit().await?;
        let row = row.ok_or_else(|| RegistryError::NotFound(id.as_str().to_owned()))?;
        Ok((webhook(&row)?, row.get(5)))
    }

    /// The webhook's newest dead letters, at most `DEAD_LETTERS_SHOWN`.
    pub async fn dead_letters(
        &self,
        tenant: TenantId,
        id: &WebhookId,
    ) -> Result<Vec<DeadLetter>, RegistryError> {
        self.get(tenant, id).await?;
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let rows = tx
            .query(
                "SELECT event_id, entity_id, attempts, last_status, last_error, created_at, \
                        finished_at, body FROM webhook_deliveries \
                 WHERE tenant_id = $1 AND webhook_id = $2 AND state = 'dead' \
                 ORDER BY finished_at DESC, delivery_id DESC LIMIT $3",
                &[&tenant.get(), &id.as_str(), &DEAD_LETTERS_SHOWN],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                event_id: r.get(0),
                entity_id: r.get(1),
                attempts: r.get(2),
                last_status: r.get(3),
                last_error: r.get(4),
                created_at: r.get(5),
                failed_at: r.get(6),
                body: r.get(7),
            })
            .collect())
    }

    pub async fn delete(&self, tenant: TenantId, id: &WebhookId) -> Result<(), RegistryError> {
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let tx = begin_tenant(&mut client, tenant).await?;
        let deleted = tx
            .execute(
                "DELETE FROM webhooks WHERE tenant_id = $1 AND webhook_id = $2",
                &[&tenant.get(), &id.as_str()],
            )
            .await?;
        tx.commit().await?;
        if deleted == 0 {
            return Err(RegistryError::NotFound(id.as_str().to_owned()));
        }
        Ok(())
    }

    /// Sends a `webhook.test` event, signed like any other, and reports
    /// what the endpoint did. The endpoint failing is the outcome, not an
    /// error of this call.
    pub async fn send_test(
        &self,
        tenant: TenantId,
        id: &WebhookId,
    ) -> Result<TestOutcome, RegistryError> {
        let (hook, secret) = self.with_secret(tenant, id).await?;
        let event_id = format!("evt_{}", random_hex(16)?);
        let now = Utc::now();
        let body = serde_json::to_vec(&serde_json::json!({
            "event_type": "webhook.test",
            "event_id": event_id,
            "webhook_id": hook.id,
            "tenant_id": tenant,
            "occurred_at": now,
            "processed_at": now,
            "lag_seconds": 0.0,
        }))
        .expect("a JSON value serializes");
        let started = Instant::now();
        let sent = match self.sender() {
            Ok(sender) => {
                let dest = Destination::parse(&hook.url, self.policy)?;
                let delivery = Delivery {
                    event_id: &event_id,
                    body: &body,
                    lag_seconds: 0.0,
                };
                sender.send(&dest, &secret, delivery).await
            }
            Err(e) => Err(e),
        };
        let duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let (status, error) = match sent {
            Ok(status) => (Some(status), None),
            Err(DeliveryError::Status(status)) => (
                Some(status),
                Some(DeliveryError::Status(status).to_string()),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(TestOutcome {
            event_id,
            delivered: error.is_none(),
            status,
            error,
            duration_ms,
        })
    }

    fn sender(&self) -> Result<&Sender, DeliveryError> {
        if let Some(s) = self.sender.get() {
            return Ok(s);
        }
        let built = Sender::new(self.policy, Sender::DEFAULT_TIMEOUT)?;
        Ok(self.sender.get_or_init(|| built))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    fn code(body: &str) -> &'static str {
        match NewWebhook::parse(body.as_bytes(), LOCAL).unwrap_err() {
            RegistryError::Invalid { code, .. } => code,
            RegistryError::Destination(_) => "destination",
            e => panic!("{e}"),
        }
    }

    #[test]
    fn a_registration_is_parsed_or_refused_by_name() {
        let ok = NewWebhook::parse(
            br#"{"url":"https://example.com/h","events":["entity.updated","entity.updated"],"attributes":["temperature","status","temperature"]}"#,
            LOCAL,
        )
        .unwrap();
        assert_eq!(ok.events, ["entity.updated"]);
        let names: Vec<&str> = ok
            .attributes
            .as_ref()
            .unwrap()
            .iter()
            .map(AttributeName::as_str)
            .collect();
        assert_eq!(names, ["temperature", "status"]);
        assert_eq!(code("[]"), "invalid_body");
        assert_eq!(
            code(r#"{"url":"https://example.com","events":["entity.updated"],"x":1}"#),
            "invalid_body"
        );
        assert_eq!(
            code(r#"{"url":"https://example.com","events":[]}"#),
            "invalid_events"
        );
        assert_eq!(
            code(r#"{"url":"https://example.com","events":["entity.deleted"]}"#),
            "invalid_events"
        );
        assert_eq!(
            code(r#"{"url":"https://example.com","events":["entity.updated"],"attributes":[]}"#),
            "invalid_attributes"
        );
        assert_eq!(
            code(
                r#"{"url":"https://example.com","events":["entity.updated"],"attributes":["Bad Name"]}"#
            ),
            "invalid_attributes"
        );
        assert_eq!(
            code(r#"{"url":"ftp://example.com","events":["entity.updated"]}"#),
            "destination"
        );
    }

    #[test]
    fn ids_are_random_and_parse_back() {
        let a = WebhookId::random().unwrap();
        let b = WebhookId::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(WebhookId::parse(a.as_str()), Some(a));
        for bad in [
            "wh_",
            "wh_0123",
            "WH_0123456789abcdef0123456789abcdef",
            "wh_0123456789ABCDEF0123456789abcdef",
            "wh_0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(WebhookId::parse(bad), None, "{bad}");
        }
    }
}
