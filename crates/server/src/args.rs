//! Request arguments checked at the edge, shared by every adapter: a bad one is an
//! INVALID_ARGUMENT that names its field.

use chrono::{DateTime, Utc};
use rapport_proto::convert;
use tonic::Status;

/// INVALID_ARGUMENT as `field: reason`, with the gRPC convention's BadRequest detail naming
/// the field, so a client can tell which field without reading the message.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let reason = reason.to_string();
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {reason}"),
        ErrorDetails::with_bad_request_violation(field, reason),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_argument_names_its_field_in_the_message_and_the_details() {
        use tonic_types::StatusExt;
        let status = invalid("events[3].occurred_at", "in the future");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "events[3].occurred_at: in the future");
        let bad = status
            .get_details_bad_request()
            .expect("a BadRequest detail");
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "events[3].occurred_at");
        assert_eq!(bad.field_violations[0].description, "in the future");
    }
}
