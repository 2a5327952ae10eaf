use atlas_core::{IdError, TenantId};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// The claim that carries the tenant, in both the cloud authorizer's JWTs
/// and the local gateway's.
pub const TENANT_CLAIM: &str = "tenant_id";

/// The claim that carries the token's scopes, space-separated (OAuth 2.0),
/// when the authorizer does not list them itself.
pub const SCOPE_CLAIM: &str = "scope";

/// What a token may do. API Gateway checks each route's scope before the
/// function runs; the function checks again, so a route added without one
/// is still guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /v1/telemetry`.
    TelemetryWrite,
    /// Every read: entities, search, history, analytics, the catalog and
    /// the plugin list.
    Read,
    /// Changes to the catalog and the plugins.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::TelemetryWrite, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TelemetryWrite => "telemetry:write",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no authorizer context: the request did not pass the JWT authorizer")]
    NoAuthorizer,
    #[error("the token has no tenant_id claim")]
    NoTenantClaim,
    #[error("the token's tenant_id claim is invalid: {0}")]
    BadTenant(IdError),
    #[error("this operation needs the {0} scope, which the token does not carry")]
    MissingScope(Scope),
}

/// A missing or bad tenant is a 401 on every route; a tenant whose token
/// lacks the route's scope is a 403.
impl From<AuthError> for crate::ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingScope(_) => crate::ApiError::new(
                http::StatusCode::FORBIDDEN,
                "insufficient_scope",
                e.to_string(),
            ),
            _ => crate::ApiError::unauthorized(e.to_string()),
        }
    }
}

/// The tenant, once the token is shown to carry `needed`.
pub fn authorize(req: &lambda_http::Request, needed: Scope) -> Result<TenantId, AuthError> {
    let tenant = tenant_from_request(req)?;
    if scopes_from_request(req)
        .iter()
        .any(|s| s == needed.as_str())
    {
        Ok(tenant)
    } else {
        Err(AuthError::MissingScope(needed))
    }
}

/// The token's scopes: as the JWT authorizer lists them, else from the
/// `scope` claim (or a Lambda authorizer's `scope` field).
fn scopes_from_request(req: &lambda_http::Request) -> Vec<String> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Vec::new();
    };
    let Some(authorizer) = ctx.authorizer.as_ref() else {
        return Vec::new();
    };
    let jwt = authorizer.jwt.as_ref();
    if let Some(scopes) = jwt.and_then(|j| j.scopes.clone()).filter(|s| !s.is_empty()) {
        return scopes;
    }
    jwt.and_then(|j| j.claims.get(SCOPE_CLAIM).cloned())
        .or_else(|| {
            authorizer
                .fields
                .get(SCOPE_CLAIM)
                .and_then(|v| v.as_str().map(str::to_owned))
        })
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
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
    fn scopes_come_from_the_authorizer_or_the_scope_claim() {
        let listed = request(serde_json::json!({"jwt": {
            "claims": {"tenant_id": "1"}, "scopes": ["read", "admin"]}}));
        assert!(authorize(&listed, Scope::Admin).is_ok());
        assert_eq!(
            authorize(&listed, Scope::TelemetryWrite),
            Err(AuthError::MissingScope(Scope::TelemetryWrite))
        );
        let claimed = request(serde_json::json!({"jwt": {
            "claims": {"tenant_id": "1", "scope": "telemetry:write read"}, "scopes": null}}));
        assert!(authorize(&claimed, Scope::TelemetryWrite).is_ok());
        assert!(authorize(&claimed, Scope::Admin).is_err());
        let none =
            request(serde_json::json!({"jwt": {"claims": {"tenant_id": "1"}, "scopes": null}}));
        assert!(authorize(&none, Scope::Read).is_err());
        // Scopes never stand in for a tenant.
        let anonymous = request(serde_json::json!({"jwt": {"claims": {}, "scopes": ["admin"]}}));
        assert_eq!(
            authorize(&anonymous, Scope::Admin),
            Err(AuthError::NoTenantClaim)
        );
        let e: crate::ApiError = AuthError::MissingScope(Scope::Admin).into();
        assert_eq!((e.status.as_u16(), e.code), (403, "insufficient_scope"));
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
