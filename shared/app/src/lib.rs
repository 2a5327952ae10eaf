//! What each function is made of. `settings` reads and checks every
//! setting from the environment, once, so a misconfigured function fails at
//! init with one line naming the variable; `startup` puts each function's
//! service together from them. The Lambda mains and `atlas dev` both start
//! here, so the local stack runs what the cloud runs.

pub mod settings;
pub mod startup;

pub use settings::{ConfigError, Settings};
pub use startup::{Heartbeat, StartupError};
