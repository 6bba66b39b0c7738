//! Bearer API keys mapped to a tenant and a role; the tenant comes from the key, never the body.

use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

/// Metadata header naming the tenant a peer service acts for.
pub const TENANT_HEADER: &str = "x-rapport-tenant";

/// The API key of the development set-up, printed by `rapport up`.
pub const DEV_API_KEY: &str = "rapport-dev-key";
/// The key services use with each other in the development set-up.
pub const DEV_SERVICE_KEY: &str = "rapport-dev-service-key";
/// The tenant of the development key.
pub const DEV_TENANT: &str = "dev";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send events.
    Ingest,
    /// Read scores, tiers and alerts.
    Read,
    /// Everything a tenant can do.
    Admin,
    /// Another Rapport service, acting for the tenant named in [`TENANT_HEADER`].
    Service,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
}

impl Principal {
    /// Fails with PERMISSION_DENIED unless the caller has one of `roles` (services always may).
    pub fn require(&self, roles: &[Role]) -> Result<&str, Status> {
        if self.role == Role::Service || self.role == Role::Admin || roles.contains(&self.role) {
            Ok(&self.tenant)
        } else {
            Err(Status::permission_denied(format!(
                "this API key has the role {:?}; the call needs one of {roles:?}",
                self.role
            )))
        }
    }

    /// Fails with PERMISSION_DENIED unless the caller is another Rapport service (for the
    /// internal notifications); returns the tenant it acts for.
    pub fn require_service(&self) -> Result<&str, Status> {
        if self.role == Role::Service {
            Ok(&self.tenant)
        } else {
            Err(Status::permission_denied(
                "internal call: only Rapport services may make it",
            ))
        }
    }

    /// The caller of a request that went through an [`Authenticator`].
    pub fn of<T>(req: &Request<T>) -> Result<&Principal, Status> {
        req.extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::unauthenticated("request was not authenticated"))
    }
}

/// Errors in an API key specification.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid API key entry {entry:?}: expected KEY=TENANT:ROLE with ROLE one of ingest, read, admin"
)]
pub struct KeySpecError {
    entry: String,
}

/// The keys a server accepts.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    tenants: HashMap<String, Principal>,
    service_key: String,
}

impl ApiKeys {
    /// Parses `KEY=TENANT:ROLE` entries separated by commas, plus the inter-service key.
    pub fn parse(spec: &str, service_key: &str) -> Result<Self, KeySpecError> {
        let mut tenants = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || KeySpecError {
                entry: entry.to_owned(),
            };
            let (key, rest) = entry.split_once('=').ok_or_else(bad)?;
            let (tenant, role) = rest.split_once(':').ok_or_else(bad)?;
            let role = Role::parse(role).ok_or_else(bad)?;
            if key.is_empty() || tenant.is_empty() {
                return Err(bad());
            }
            tenants.insert(
                key.to_owned(),
                Principal {
                    tenant: tenant.to_owned(),
                    role,
                },
            );
        }
        Ok(ApiKeys {
            tenants,
            service_key: service_key.to_owned(),
        })
    }

    /// The development keys (`rapport up`): one admin key for the `dev` tenant.
    pub fn dev() -> Self {
        Self::parse(
            &format!("{DEV_API_KEY}={DEV_TENANT}:admin"),
            DEV_SERVICE_KEY,
        )
        .expect("the built-in development key spec is valid")
    }

    /// Whether these are the well-known development keys (worth a warning in production).
    pub fn is_dev(&self) -> bool {
        self.service_key == DEV_SERVICE_KEY || self.tenants.contains_key(DEV_API_KEY)
    }

    /// The key this process uses to call its peers.
    pub fn service_key(&self) -> &str {
        &self.service_key
    }

    /// Identifies the caller from `authorization: Bearer KEY` (and the tenant header for peers).
    pub fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, Status> {
        let key = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing `authorization: Bearer <API key>` metadata")
            })?;
        if key == self.service_key {
            let tenant = metadata
                .get(TENANT_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Status::unauthenticated(format!(
                        "a service call must name the tenant in `{TENANT_HEADER}`"
                    ))
                })?;
            return Ok(Principal {
                tenant: tenant.to_owned(),
                role: Role::Service,
            });
        }
        self.tenants
            .get(key)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown API key"))
    }
}

/// A tonic interceptor that authenticates every call and attaches its [`Principal`].
#[derive(Debug, Clone)]
pub struct Authenticator(pub Arc<ApiKeys>);

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.0.authenticate(req.metadata())?;
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn meta(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn keys_map_to_tenant_and_role() {
        let keys = ApiKeys::parse("k1=acme:ingest, k2=globex:read", "svc").unwrap();
        let p = keys
            .authenticate(&meta(&[("authorization", "Bearer k1")]))
            .unwrap();
        assert_eq!(
            p,
            Principal {
                tenant: "acme".into(),
                role: Role::Ingest
            }
        );
        assert!(p.require(&[Role::Read]).is_err());
        assert_eq!(p.require(&[Role::Ingest]).unwrap(), "acme");
        assert!(
            keys.authenticate(&meta(&[("authorization", "Bearer nope")]))
                .is_err()
        );
        assert!(keys.authenticate(&meta(&[])).is_err());
    }

    #[test]
    fn services_name_the_tenant() {
        let keys = ApiKeys::parse("", "svc").unwrap();
        assert!(
            keys.authenticate(&meta(&[("authorization", "Bearer svc")]))
                .is_err()
        );
        let p = keys
            .authenticate(&meta(&[
                ("authorization", "Bearer svc"),
                (TENANT_HEADER, "acme"),
            ]))
            .unwrap();
        assert_eq!((p.tenant.as_str(), p.role), ("acme", Role::Service));
        assert_eq!(p.require_service().unwrap(), "acme");
        let admin = Principal {
            tenant: "acme".into(),
            role: Role::Admin,
        };
        assert_eq!(
            admin.require_service().unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for spec in ["k", "k=t", "k=t:root", "=t:read", "k=:read"] {
            assert!(ApiKeys::parse(spec, "s").is_err(), "{spec}");
        }
    }
}
