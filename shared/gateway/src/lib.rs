//! API Gateway on one machine, for `atlas dev`, the benchmarks and the CLI:
//! tokens signed with a local secret (HS256) in place of the identity
//! provider's, a gateway that checks them as the JWT authorizer would and
//! hands the functions' handlers the same payload-2.0 events, and such
//! events built in process. No Lambda function links this crate.

pub mod jwt;
pub mod local;
