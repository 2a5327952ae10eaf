//! The HTTP edge shared by the API Gateway functions: who the tenant is
//! (from the JWT authorizer context), typed JSON errors, the conversion to
//! an API Gateway v2 response, and the local gateway that `atlas dev` uses
//! to stand in for API Gateway and its JWT authorizer.

mod auth;
mod error;
pub mod jwt;
pub mod local;
mod response;

pub use auth::{AuthError, Scope, authorize, tenant_from_request};
pub use error::ApiError;
pub use lambda_http::{Body, Request, Response};
pub use response::{body_bytes, is_json_object, json, query_params, to_apigw_response};
