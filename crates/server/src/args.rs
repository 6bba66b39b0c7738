//! Request arguments checked at the edge, shared by every adapter: a bad one is an
//! INVALID_ARGUMENT that names its field.

use chrono::{DateTime, Utc};
use rapport_proto::convert;
use tonic::Status;

/// INVALID_ARGUMENT as `field: reason`.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// An optional timestamp argument: `None` when absent, INVALID_ARGUMENT naming `field` when out
/// of range.
pub fn time(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| convert::time(t, field).map_err(|r| Status::invalid_argument(r.to_string())))
        .transpose()
}
