//! `rapport keys`: API keys managed by the platform (create, list, revoke, audit).

use crate::alerts::parse_duration;
use crate::{Target, when};
use rapport_proto::keys::v1 as pb;
use serde_json::json;
use tonic::transport::Channel;

type Client = pb::key_service_client::KeyServiceClient<Channel>;

/// What to do with API keys.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its secret, shown this once.
    Create {
        /// The tenant it acts for (default: the caller's own; an operator must name one).
        #[arg(long, default_value = "")]
        tenant: String,
        /// ingest, read, admin or operator.
        #[arg(long)]
        role: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        name: String,
        /// How long it stays valid, e.g. 90d, 12h (default: until revoked).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<chrono::Duration>,
    },
    /// The keys in force (with `--all`, revoked and expired ones too).
    List {
        #[arg(long)]
        all: bool,
        /// An operator's filter.
        #[arg(long, default_value = "")]
        tenant: String,
    },
    /// Revoke a key: every service refuses it within seconds.
    Revoke { id: String },
    /// Who did what to keys, and when.
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

fn role(name: &str) -> anyhow::Result<pb::KeyRole> {
    Ok(match name {
        "ingest" => pb::KeyRole::Ingest,
        "read" => pb::KeyRole::Read,
        "admin" => pb::KeyRole::Admin,
        "operator" => pb::KeyRole::Operator,
        other => anyhow::bail!("--role {other:?}: one of ingest, read, admin, operator"),
    })
}

fn role_name(role: i32) -> &'static str {
    match pb::KeyRole::try_from(role) {
        Ok(pb::KeyRole::Ingest) => "ingest",
        Ok(pb::KeyRole::Read) => "read",
        Ok(pb::KeyRole::Admin) => "admin",
        Ok(pb::KeyRole::Operator) => "operator",
        _ => "-",
    }
}

fn key_json(k: &pb::ApiKey) -> serde_json::Value {
    json!({
        "id": k.id,
        "tenant": k.tenant,
        "role": role_name(k.role),
        "name": k.name,
        "created_at": when(k.created_at.as_ref()),
        "created_by": k.created_by,
        "expires_at": when(k.expires_at.as_ref()),
        "revoked_at": when(k.revoked_at.as_ref()),
        "revoked_by": k.revoked_by,
    })
}

fn print_header() {
    outln!(
        "{:<12} {:<12} {:<8} {:<19} {:<19} {:<19} NAME",
        "ID",
        "TENANT",
        "ROLE",
        "CREATED",
        "EXPIRES",
        "REVOKED"
    );
}

fn print_key(k: &pb::ApiKey) {
    outln!(
        "{:<12} {:<12} {:<8} {:<19} {:<19} {:<19} {}",
        k.id,
        k.tenant,
        role_name(k.role),
        when(k.created_at.as_ref()),
        when(k.expires_at.as_ref()),
        when(k.revoked_at.as_ref()),
        k.name
    );
}

/// Runs one `rapport keys` command.
pub async fn keys(
    target: &Target,
    mut client: Client,
    command: KeysCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            tenant,
            role: r,
            name,
            expires,
        } => {
            let created = client
                .create_key(target.request(pb::CreateKeyRequest {
                    tenant,
                    role: role(&r)? as i32,
                    name,
                    expires_in: expires.map(|d| prost_types::Duration {
                        seconds: d.num_seconds(),
                        nanos: 0,
                    }),
                })?)
                .await?
                .into_inner();
            let key = created.key.unwrap_or_default();
            if json {
                let mut out = key_json(&key);
                out["secret"] = created.secret.into();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_header();
                print_key(&key);
                outln!(
                    "secret (shown once, stored only as a digest): {}",
                    created.secret
                );
            }
        }
        KeysCommand::List { all, tenant } => {
            let keys = client
                .list_keys(target.request(pb::ListKeysRequest {
                    tenant,
                    include_inactive: all,
                })?)
                .await?
                .into_inner()
                .keys;
            if json {
                let out: Vec<_> = keys.iter().map(key_json).collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_header();
                keys.iter().for_each(print_key);
            }
        }
        KeysCommand::Revoke { id } => {
            let key = client
                .revoke_key(target.request(pb::RevokeKeyRequest { id })?)
                .await?
                .into_inner();
            if json {
                outln!("{}", serde_json::to_string_pretty(&key_json(&key))?);
            } else {
                print_header();
                print_key(&key);
            }
        }
        KeysCommand::Audit { limit } => {
            let entries = client
                .list_key_audit(target.request(pb::ListKeyAuditRequest { limit })?)
                .await?
                .into_inner()
                .entries;
            if json {
                let out: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        json!({
                            "at": when(e.at.as_ref()),
                            "actor": e.actor,
                            "tenant": e.tenant,
                            "action": e.action,
                            "key_id": e.key_id,
                            "detail": e.detail,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                outln!(
                    "{:<19} {:<14} {:<12} {:<7} {:<12} DETAIL",
                    "AT",
                    "ACTOR",
                    "TENANT",
                    "ACTION",
                    "KEY"
                );
                for e in &entries {
                    outln!(
                        "{:<19} {:<14} {:<12} {:<7} {:<12} {}",
                        when(e.at.as_ref()),
                        e.actor,
                        e.tenant,
                        e.action,
                        e.key_id,
                        e.detail
                    );
                }
            }
        }
    }
    Ok(())
}
