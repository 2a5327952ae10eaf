//! The HTTP edge shared by the API Gateway functions: who the tenant is
//! and what it may do (from the JWT authorizer context), typed JSON errors,
//! and the conversion to an API Gateway v2 response. The local stand-in for
//! API Gateway lives in `atlas-gateway`, which no function links.

mod auth;
mod error;
mod response;

pub use auth::{AuthError, Scope, authorize, tenant_from_request};
pub use error::ApiError;
pub use lambda_http::{Body, Request, Response};
pub use response::{
    body_bytes, is_json_object, json, query_params, segments_under, to_apigw_response,
};
