//! Managed API keys outside their table: new secrets, the wire form, and keeping a server's
//! copy of the keys in force fresh (revocation reaches every replica within [`SYNC_EVERY`]
//! and the time of one call).

use crate::auth::{ApiKeys, MANAGED_PREFIX, ManagedKey, Role};
use rand::Rng;
use rand::distr::Alphanumeric;
use rapport_proto::convert;
use rapport_proto::keys::v1 as pb;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a server reads the keys in force again.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// A new key: its public id and the whole secret (`rk_<id>_<secret>`, about 240 random bits).
pub fn generate() -> (String, String) {
    let mut rng = rand::rng();
    let id: String = (0..12)
        .map(|_| char::from(rng.sample(Alphanumeric)).to_ascii_lowercase())
        .collect();
    let secret: String = (0..40)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect();
    let whole = format!("{MANAGED_PREFIX}{id}_{secret}");
    (id, whole)
}

/// A role as the key RPCs carry it (the service role is never a managed key's).
pub fn role_to_pb(role: Role) -> pb::KeyRole {
    match role {
        Role::Ingest => pb::KeyRole::Ingest,
        Role::Read => pb::KeyRole::Read,
        Role::Admin => pb::KeyRole::Admin,
        Role::Operator => pb::KeyRole::Operator,
        Role::Service => pb::KeyRole::Unspecified,
    }
}

/// The role a key RPC names, if it names one a key may have.
pub fn role_from_pb(role: i32) -> Option<Role> {
    match pb::KeyRole::try_from(role).ok()? {
        pb::KeyRole::Ingest => Some(Role::Ingest),
        pb::KeyRole::Read => Some(Role::Read),
        pb::KeyRole::Admin => Some(Role::Admin),
        pb::KeyRole::Operator => Some(Role::Operator),
        pb::KeyRole::Unspecified => None,
    }
}

/// A key in force as `SyncKeys` sends it.
pub fn digest_to_pb(key: &ManagedKey) -> pb::KeyDigest {
    pb::KeyDigest {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        role: role_to_pb(key.role) as i32,
        sha256: key.sha256.to_vec(),
        expires_at: key.expires_at_ms.map(convert::timestamp),
    }
}

/// A key in force from `SyncKeys`; none when it is malformed (an unreadable expiry too: the
/// key is then refused, never taken as one that does not expire).
pub fn digest_from_pb(key: pb::KeyDigest) -> Option<ManagedKey> {
    let expires_at_ms = match &key.expires_at {
        Some(t) => Some(convert::millis(Some(t))?),
        None => None,
    };
    Some(ManagedKey {
        role: role_from_pb(key.role)?,
        sha256: key.sha256.as_slice().try_into().ok()?,
        expires_at_ms,
        id: key.id,
        tenant: key.tenant,
    })
}

/// Reads the keys in force with `fetch` now and every [`SYNC_EVERY`] until `stop`, into
/// `keys`. A failed read keeps the copy it has (the keys' owner may be restarting) and is
/// logged once per run of failures.
pub async fn follow<F, Fut>(keys: Arc<ApiKeys>, mut fetch: F, stop: CancellationToken)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<ManagedKey>, String>>,
{
    let mut failing = false;
    loop {
        match fetch().await {
            Ok(managed) => {
                if failing {
                    tracing::info!(keys = managed.len(), "managed API keys read again");
                }
                failing = false;
                keys.set_managed(managed);
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot read the managed API keys; keeping the last copy");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(SYNC_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Follows the keys in force as the key service at `channel` (ingestion) tells them.
pub fn follow_peer(
    keys: Arc<ApiKeys>,
    channel: crate::PeerChannel,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let client = pb::key_service_client::KeyServiceClient::new(channel);
    let service_key = keys.service_key().to_owned();
    tokio::spawn(follow(
        keys,
        move || {
            let mut client = client.clone();
            let req = crate::peer_request(
                pb::SyncKeysRequest {},
                "*",
                &service_key,
                Duration::from_secs(5),
            );
            async move {
                let answer = client
                    .sync_keys(req)
                    .await
                    .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
                Ok(answer
                    .into_inner()
                    .keys
                    .into_iter()
                    .filter_map(digest_from_pb)
                    .collect())
            }
        },
        stop,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_distinct_and_name_their_id() {
        let (id, secret) = generate();
        let (other, _) = generate();
        assert_ne!(id, other);
        assert_eq!(crate::auth::managed_id(&secret), Some(id.as_str()));
        assert!(secret.len() > 50);
    }

    fn key_with_expiry() -> ManagedKey {
        ManagedKey {
            id: "k".into(),
            tenant: "t".into(),
            role: Role::Ingest,
            sha256: crate::auth::digest("x"),
            expires_at_ms: Some(1_234_567),
        }
    }

    #[test]
    fn digests_travel_intact() {
        let key = key_with_expiry();
        assert_eq!(digest_from_pb(digest_to_pb(&key)), Some(key));
        let mut bad = digest_to_pb(&ManagedKey {
            id: "k".into(),
            tenant: "t".into(),
            role: Role::Read,
            sha256: [0; 32],
            expires_at_ms: None,
        });
        bad.sha256.pop();
        assert_eq!(digest_from_pb(bad), None);
        let mut unreadable = digest_to_pb(&key_with_expiry());
        unreadable.expires_at = Some(prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        assert_eq!(
            digest_from_pb(unreadable),
            None,
            "refused, not kept for ever"
        );
    }
}
