//! The local stack behind `atlas dev`: a private PostgreSQL cluster (or a
//! given database), migrations, demo data, the local API gateway in front of
//! the same handlers the Lambda functions run, and the flusher on a timer;
//! and the upkeep of the sample events in `events/`.

pub mod cluster;
pub mod demo;
pub mod dev;
pub mod events;
pub mod secret;
