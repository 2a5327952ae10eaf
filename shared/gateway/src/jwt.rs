//! Locally signed tokens for `atlas dev`. In AWS, API Gateway's JWT
//! authorizer checks the identity provider's tokens; locally we sign with a
//! shared secret (HS256) and check the same `tenant_id` claim.

use atlas_core::TenantId;

use atlas_http::Scope;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "atlas-local";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    /// A string, as API Gateway passes every claim to the function.
    pub tenant_id: String,
    /// Space-separated scopes, as OAuth 2.0 writes them.
    #[serde(default)]
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the signing secret must be at least 32 bytes")]
    WeakSecret,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Result<Self, JwtError> {
        if secret.len() < 32 {
            return Err(JwtError::WeakSecret);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    pub fn issue(
        &self,
        tenant: TenantId,
        scopes: &[Scope],
        ttl: chrono::Duration,
    ) -> Result<String, JwtError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: format!("tenant-{tenant}"),
            iss: ISSUER.into(),
            tenant_id: tenant.to_string(),
            scope: scope_claim(scopes),
            iat: now,
            exp: now + ttl.num_seconds(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, algorithm, issuer and expiry, as the authorizer would.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)?.claims)
    }
}

/// Scopes as the `scope` claim writes them.
pub fn scope_claim(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_carry_the_tenant() {
        let s = Signer::new(&[7; 32]).unwrap();
        let t = s
            .issue(
                TenantId::new(3).unwrap(),
                &Scope::ALL,
                chrono::Duration::hours(1),
            )
            .unwrap();
        let claims = s.verify(&t).unwrap();
        assert_eq!(claims.tenant_id, "3");
        assert_eq!(claims.scope, "telemetry:write read admin");
    }

    #[test]
    fn foreign_expired_and_tampered_tokens_fail() {
        let s = Signer::new(&[7; 32]).unwrap();
        let other = Signer::new(&[8; 32]).unwrap();
        let t = other
            .issue(
                TenantId::new(3).unwrap(),
                &Scope::ALL,
                chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(s.verify(&t).is_err());
        let expired = s
            .issue(
                TenantId::new(3).unwrap(),
                &Scope::ALL,
                chrono::Duration::hours(-2),
            )
            .unwrap();
        assert!(s.verify(&expired).is_err());
        let mut tampered = s
            .issue(
                TenantId::new(3).unwrap(),
                &Scope::ALL,
                chrono::Duration::hours(1),
            )
            .unwrap();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(s.verify(&tampered).is_err());
        assert!(Signer::new(b"short").is_err());
    }
}
