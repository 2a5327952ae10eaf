//! Webhooks (seed B.4): a tenant registers an HTTPS endpoint, and Atlas
//! posts `entity.updated` events to it, signed.
//!
//! - [`Destination`]: a registered URL, parsed, with the address policy
//!   that keeps deliveries off loopback, private, link-local and cloud
//!   metadata addresses. It is checked at registration, and the
//!   [`Sender`]'s resolver checks every address again at delivery, so a
//!   name that resolves elsewhere later (DNS rebinding) gains nothing;
//! - [`Registry`]: registration, listing, removal and test events, under
//!   the tenant's row-level security. The signing secret is shown once;
//! - [`signature`]: the HMAC-SHA256 signature a receiver verifies;
//! - [`receiver`]: a receiver on this machine, for `atlas demo` and tests;
//! - [`http`]: the `/v1/webhooks` routes of the query API;
//! - [`Sink`]: the CDC loader's second sink, which turns changes of hot
//!   state into deliveries;
//! - [`Deliverer`]: the sender, run by the heartbeat function, which
//!   posts them in order per entity, retries, and keeps dead letters.

mod deliver;
mod destination;
pub mod http;
pub mod receiver;
mod registry;
mod sender;
pub mod signature;
mod sink;

pub use deliver::{Deliverer, DeliveryConfig, Sent};
pub use destination::{AddressPolicy, Destination, DestinationError};
pub use registry::{
    Created, DEAD_LETTERS_SHOWN, DeadLetter, EVENT_TYPES, MAX_ATTRIBUTES, MAX_PER_TENANT,
    NewWebhook, Registry, RegistryError, TestOutcome, Webhook, WebhookId,
};
pub use sender::{Delivery, DeliveryError, Sender};
pub use sink::{Enqueued, HotChange, Sink, changes};
