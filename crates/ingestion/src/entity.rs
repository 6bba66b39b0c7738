//! Ingestion's tables: stored events, quarantine (rejected input), its outbox, and the
//! managed API keys with their audit.

/// Stored events; `seq` orders a tenant's events as they were committed.
pub mod event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ingestion_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub tenant_id: String,
        pub event_id: String,
        pub customer_id: String,
        pub event_type: String,
        /// Event time corrected for clock skew, ms since the epoch.
        pub occurred_at: i64,
        /// The producer's send time, ms since the epoch.
        pub sent_at: Option<i64>,
        pub received_at: i64,
        /// The event exactly as received (protobuf).
        pub payload: Vec<u8>,
        /// Hash of the event's content, to tell a retry from a conflicting reuse of the id.
        pub content_hash: String,
        /// The backfill (an import of history) the event came in with; NULL when live.
        pub backfill: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Rejected events, kept with their reason so they can be inspected and replayed.
pub mod quarantine {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ingestion_quarantine")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub event_id: String,
        pub reason: String,
        pub field: String,
        pub message: String,
        pub raw: Vec<u8>,
        pub received_at: i64,
        /// When the event was replayed successfully, if it was.
        pub replayed_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Managed API keys: the digest of each secret, never the secret.
pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ingestion_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        /// `ingest`, `read`, `admin` or `operator`.
        pub role: String,
        pub name: String,
        /// SHA-256 of the whole secret.
        pub sha256: Vec<u8>,
        pub created_at: i64,
        /// The key that created it.
        pub created_by: String,
        pub expires_at: Option<i64>,
        pub revoked_at: Option<i64>,
        pub revoked_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every use of a key RPC: who, what, when.
pub mod key_audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ingestion_key_audit")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: i64,
        /// The id of the key that made the call.
        pub actor: String,
        pub tenant_id: String,
        pub action: String,
        pub key_id: Option<String>,
        pub detail: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
