use atlas_core::{IdError, TenantId};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// The claim that carries the tenant, in both the cloud authorizer's JWTs
/// and the local gateway's.
pub const TENANT_CLAIM: &str = "tenant_id";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no authorizer context: the request did not pass the JWT authorizer")]
    NoAuthorizer,
    #[error("the token has no tenant_id claim")]
    NoTenantClaim,
    #[error("the token's tenant_id claim is invalid: {0}")]
    BadTenant(IdError),
}

/// Every route answers a missing or bad tenant the same way: 401.
impl From<AuthError> for crate::ApiError {
    fn from(e: AuthError) -> Self {
        crate::ApiError::unauthorized(e.to_string())
    }
}

/// The tenant from the API Gateway authorizer context. The body is never
/// consulted: a caller cannot name a tenant, only prove one.
pub fn tenant_from_request(req: &lambda_http::Request) -> Result<TenantId, AuthError> {
    let ctx = req.request_context_ref().ok_or(AuthError::NoAuthorizer)?;
    let RequestContext::ApiGatewayV2(ctx) = ctx else {
        return Err(AuthError::NoAuthorizer);
    };
    let authorizer = ctx.authorizer.as_ref().ok_or(AuthError::NoAuthorizer)?;
    let claim = authorizer
        .jwt
        .as_ref()
        .and_then(|jwt| jwt.claims.get(TENANT_CLAIM).cloned())
        // A Lambda authorizer puts its context under `lambda` instead.
        .or_else(|| {
            authorizer.fields.get(TENANT_CLAIM).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .ok_or(AuthError::NoTenantClaim)?;
    TenantId::parse(&claim).map_err(AuthError::BadTenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorizer: serde_json::Value) -> lambda_http::Request {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "POST /v1/telemetry", "rawPath": "/v1/telemetry",
            "rawQueryString": "", "headers": {},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
                "http": {"method": "POST", "path": "/v1/telemetry", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "POST /v1/telemetry", "stage": "$default",
                "time": "24/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
                "authorizer": authorizer
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn tenant_comes_from_jwt_claims() {
        let req =
            request(serde_json::json!({"jwt": {"claims": {"tenant_id": "42"}, "scopes": null}}));
        assert_eq!(tenant_from_request(&req).unwrap().get(), 42);
    }

    #[test]
    fn tenant_comes_from_a_lambda_authorizer_too() {
        let req = request(serde_json::json!({"lambda": {"tenant_id": 7}}));
        assert_eq!(tenant_from_request(&req).unwrap().get(), 7);
    }

    #[test]
    fn missing_or_bad_claims_are_refused() {
        let req = request(serde_json::json!({"jwt": {"claims": {"sub": "x"}, "scopes": null}}));
        assert_eq!(tenant_from_request(&req), Err(AuthError::NoTenantClaim));
        let req =
            request(serde_json::json!({"jwt": {"claims": {"tenant_id": "-1"}, "scopes": null}}));
        assert!(matches!(
            tenant_from_request(&req),
            Err(AuthError::BadTenant(_))
        ));
        let req = lambda_http::Request::new(lambda_http::Body::Empty);
        assert_eq!(tenant_from_request(&req), Err(AuthError::NoAuthorizer));
    }
}
