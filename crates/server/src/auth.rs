//! Bearer API keys mapped to a tenant and a role; the tenant comes from the key, never the body.
//!
//! A server accepts three kinds of key: the bootstrap keys of its settings
//! (`RAPPORT_API_KEYS`), the keys managed through the key RPCs (a copy of their digests,
//! refreshed by [`crate::keys::follow`]), and the service key its peers call it with. Keys are
//! compared by their SHA-256 digest, in constant time where a lookup by id finds a candidate.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// Metadata header naming the tenant a peer service acts for.
pub const TENANT_HEADER: &str = "x-rapport-tenant";

/// The API key of the development set-up, printed by `rapport up`.
pub const DEV_API_KEY: &str = "rapport-dev-key";
/// The key services use with each other in the development set-up.
pub const DEV_SERVICE_KEY: &str = "rapport-dev-service-key";
/// The tenant of the development key.
pub const DEV_TENANT: &str = "dev";
/// The prefix of a managed key's secret: `rk_<id>_<secret>`.
pub const MANAGED_PREFIX: &str = "rk_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Send events.
    Ingest,
    /// Read scores, tiers and alerts.
    Read,
    /// Everything a tenant can do, its keys included.
    Admin,
    /// Manage the keys of every tenant, and nothing else.
    Operator,
    /// Another Rapport service, acting for the tenant named in [`TENANT_HEADER`]; it may call
    /// only the internal RPCs.
    Service,
}

impl Role {
    /// The role a key specification names (`ingest`, `read`, `admin`, `operator`).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }

    /// The name [`Role::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Service => "service",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
    /// Names the key in logs and audit trails without revealing it: a managed key's id, or
    /// `env:` and the first hex digits of a bootstrap key's digest.
    pub key_id: String,
    /// The RPC called (`/package.Service/Method`), for the audit log.
    pub method: String,
}

impl Principal {
    /// Fails with PERMISSION_DENIED unless the caller has one of `roles` (an admin has them
    /// all); the service key and operator keys never pass: they may call only the internal
    /// and the key RPCs respectively.
    pub fn require(&self, roles: &[Role]) -> Result<&str, Status> {
        match self.role {
            Role::Service => Err(Status::permission_denied(
                "the service key may call only the internal RPCs",
            )),
            Role::Operator => Err(Status::permission_denied(
                "an operator key may call only the key RPCs",
            )),
            role if role == Role::Admin || roles.contains(&role) => {
                if roles == [Role::Admin] {
                    tracing::info!(
                        target: "rapport::audit",
                        key = %self.key_id,
                        tenant = %self.tenant,
                        method = %self.method,
                        "admin call"
                    );
                }
                Ok(&self.tenant)
            }
            role => Err(Status::permission_denied(format!(
                "this API key has the role {}; the call needs one of {}",
                role.name(),
                roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// [`Principal::require`], or another Rapport service: for the listings both people and
    /// services read.
    pub fn require_or_service(&self, roles: &[Role]) -> Result<&str, Status> {
        if self.role == Role::Service {
            Ok(&self.tenant)
        } else {
            self.require(roles)
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

    /// The caller of a request that went through the server's guard.
    pub fn of<T>(req: &Request<T>) -> Result<&Principal, Status> {
        req.extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::unauthenticated("request was not authenticated"))
    }
}

/// Errors in an API key specification.
#[derive(Debug, thiserror::Error)]
pub enum KeySpecError {
    #[error(
        "invalid API key entry {entry:?}: expected KEY=TENANT:ROLE with ROLE one of ingest, read, admin, operator"
    )]
    Entry { entry: String },
    #[error(
        "{what} is the built-in development key: set your own, or RAPPORT_ALLOW_DEV_KEYS=true on a development machine"
    )]
    DevKey { what: &'static str },
}

/// A managed key as servers check it: its digest, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedKey {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    /// SHA-256 of the whole secret.
    pub sha256: [u8; 32],
    /// Milliseconds since the epoch after which the key is refused; none: until revoked.
    pub expires_at_ms: Option<i64>,
}

/// The SHA-256 digest of a key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The id of a managed key's secret (`rk_<id>_<secret>`), if it has that form.
pub fn managed_id(key: &str) -> Option<&str> {
    let (id, _) = key.strip_prefix(MANAGED_PREFIX)?.split_once('_')?;
    (!id.is_empty()).then_some(id)
}

/// The keys a server accepts.
#[derive(Debug)]
pub struct ApiKeys {
    bootstrap: HashMap<[u8; 32], Principal>,
    service_key: String,
    service_digest: [u8; 32],
    managed: RwLock<Arc<HashMap<String, ManagedKey>>>,
}

impl ApiKeys {
    /// Parses `KEY=TENANT:ROLE` entries separated by commas, plus the inter-service key.
    pub fn parse(spec: &str, service_key: &str) -> Result<Self, KeySpecError> {
        let mut bootstrap = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || KeySpecError::Entry {
                entry: entry.to_owned(),
            };
            let (key, rest) = entry.split_once('=').ok_or_else(bad)?;
            let (tenant, role) = rest.split_once(':').ok_or_else(bad)?;
            let role = Role::parse(role).ok_or_else(bad)?;
            if key.is_empty() || tenant.is_empty() {
                return Err(bad());
            }
            let digest = digest(key);
            bootstrap.insert(
                digest,
                Principal {
                    tenant: tenant.to_owned(),
                    role,
                    key_id: format!("env:{}", hex::encode(&digest[..4])),
                    method: String::new(),
                },
            );
        }
        Ok(ApiKeys {
            bootstrap,
            service_key: service_key.to_owned(),
            service_digest: digest(service_key),
            managed: RwLock::default(),
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

    /// Whether these include the well-known development keys.
    pub fn is_dev(&self) -> bool {
        self.service_key == DEV_SERVICE_KEY || self.bootstrap.contains_key(&digest(DEV_API_KEY))
    }

    /// The key this process uses to call its peers.
    pub fn service_key(&self) -> &str {
        &self.service_key
    }

    /// Replaces the managed keys in force (what the key table holds now).
    pub fn set_managed(&self, keys: Vec<ManagedKey>) {
        let map = keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        if let Ok(mut managed) = self.managed.write() {
            *managed = Arc::new(map);
        }
    }

    /// Identifies the caller from `authorization: Bearer KEY` (and the tenant header for
    /// peers), at `now_ms` (expiry).
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        now_ms: i64,
    ) -> Result<Principal, Status> {
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing `authorization: Bearer <API key>` metadata")
            })?;
        let key_digest = digest(key);
        let named = headers.get(TENANT_HEADER);
        if bool::from(key_digest.ct_eq(&self.service_digest)) {
            let tenant = named
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
                key_id: "service".to_owned(),
                method: String::new(),
            });
        }
        let principal = match managed_id(key) {
            Some(id) => self.managed_principal(id, &key_digest, now_ms)?,
            None => self
                .bootstrap
                .get(&key_digest)
                .cloned()
                .ok_or_else(|| Status::unauthenticated("unknown API key"))?,
        };
        if named.is_some() {
            return Err(Status::permission_denied(format!(
                "only Rapport services may name a tenant in `{TENANT_HEADER}`: a key acts for its own tenant"
            )));
        }
        Ok(principal)
    }

    /// The caller of managed key `id` whose secret has `key_digest`.
    fn managed_principal(
        &self,
        id: &str,
        key_digest: &[u8; 32],
        now_ms: i64,
    ) -> Result<Principal, Status> {
        let managed = self
            .managed
            .read()
            .map(|m| Arc::clone(&m))
            .map_err(|_| Status::unavailable("the key set is being replaced; retry"))?;
        let key = managed
            .get(id)
            .filter(|k| bool::from(k.sha256.ct_eq(key_digest)))
            .ok_or_else(|| Status::unauthenticated("unknown or revoked API key"))?;
        if key.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(Status::unauthenticated(format!(
                "API key {} has expired",
                key.id
            )));
        }
        Ok(Principal {
            tenant: key.tenant.clone(),
            role: key.role,
            key_id: key.id.clone(),
            method: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn keys_map_to_tenant_and_role() {
        let keys = ApiKeys::parse("k1=acme:ingest, k2=globex:read", "svc").unwrap();
        let p = keys
            .authenticate(&meta(&[("authorization", "Bearer k1")]), 0)
            .unwrap();
        assert_eq!((p.tenant.as_str(), p.role), ("acme", Role::Ingest));
        assert!(p.key_id.starts_with("env:"), "{}", p.key_id);
        assert!(!p.key_id.contains("k1"));
        assert!(p.require(&[Role::Read]).is_err());
        assert_eq!(p.require(&[Role::Ingest]).unwrap(), "acme");
        assert!(
            keys.authenticate(&meta(&[("authorization", "Bearer nope")]), 0)
                .is_err()
        );
        assert!(keys.authenticate(&meta(&[]), 0).is_err());
    }

    #[test]
    fn only_services_name_the_tenant_and_they_call_only_internal_rpcs() {
        let keys = ApiKeys::parse("k1=acme:admin", "svc").unwrap();
        assert!(
            keys.authenticate(&meta(&[("authorization", "Bearer svc")]), 0)
                .is_err()
        );
        let p = keys
            .authenticate(
                &meta(&[("authorization", "Bearer svc"), (TENANT_HEADER, "acme")]),
                0,
            )
            .unwrap();
        assert_eq!((p.tenant.as_str(), p.role), ("acme", Role::Service));
        assert_eq!(p.require_service().unwrap(), "acme");
        assert_eq!(p.require_or_service(&[Role::Read]).unwrap(), "acme");
        assert_eq!(
            p.require(&[Role::Read]).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let named = keys
            .authenticate(
                &meta(&[("authorization", "Bearer k1"), (TENANT_HEADER, "globex")]),
                0,
            )
            .unwrap_err();
        assert_eq!(named.code(), tonic::Code::PermissionDenied);
        let admin = keys
            .authenticate(&meta(&[("authorization", "Bearer k1")]), 0)
            .unwrap();
        assert_eq!(
            admin.require_service().unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn operators_manage_keys_only() {
        let keys = ApiKeys::parse("op=*:operator", "svc").unwrap();
        let p = keys
            .authenticate(&meta(&[("authorization", "Bearer op")]), 0)
            .unwrap();
        assert_eq!(p.role, Role::Operator);
        assert!(p.require(&[Role::Read]).is_err());
    }

    #[test]
    fn managed_keys_are_checked_by_digest_revocation_and_expiry() {
        let keys = ApiKeys::parse("", "svc").unwrap();
        let secret = "rk_abc123_s3cr3t";
        let bearer = format!("Bearer {secret}");
        let call = |keys: &ApiKeys, now| {
            keys.authenticate(&meta(&[("authorization", bearer.as_str())]), now)
        };
        assert!(call(&keys, 0).is_err(), "not yet synced");
        keys.set_managed(vec![ManagedKey {
            id: "abc123".into(),
            tenant: "acme".into(),
            role: Role::Read,
            sha256: digest(secret),
            expires_at_ms: Some(1_000),
        }]);
        let p = call(&keys, 999).unwrap();
        assert_eq!((p.tenant.as_str(), p.key_id.as_str()), ("acme", "abc123"));
        assert!(
            call(&keys, 1_000)
                .unwrap_err()
                .message()
                .contains("expired")
        );
        let forged = keys.authenticate(&meta(&[("authorization", "Bearer rk_abc123_guess")]), 0);
        assert_eq!(forged.unwrap_err().code(), tonic::Code::Unauthenticated);
        keys.set_managed(Vec::new());
        assert!(call(&keys, 0).unwrap_err().message().contains("revoked"));
    }

    #[test]
    fn bad_specs_are_refused() {
        for spec in ["k", "k=t", "k=t:root", "=t:read", "k=:read"] {
            assert!(ApiKeys::parse(spec, "s").is_err(), "{spec}");
        }
        assert_eq!(managed_id("rk_ab_cd"), Some("ab"));
        for not_managed in ["rk__cd", "rk_ab", "ab_cd"] {
            assert_eq!(managed_id(not_managed), None, "{not_managed}");
        }
    }
}
