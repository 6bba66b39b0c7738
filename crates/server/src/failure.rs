//! One error policy for every service: the few kinds of failure a caller can tell apart, each
//! answered with one gRPC status. A service maps its own errors to these once, in its
//! `grpc.rs`; what the caller did wrong is logged at most as a warning, what broke here as an
//! error.

use tonic::Status;

/// A failure as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request is wrong: INVALID_ARGUMENT naming the field, with a BadRequest detail.
    Invalid { field: String, reason: String },
    /// What the request names does not exist: NOT_FOUND.
    NotFound(String),
    /// The request is valid but the state does not allow it: FAILED_PRECONDITION.
    Precondition(String),
    /// The request asks for what is no longer kept (a compacted revision): OUT_OF_RANGE.
    OutOfRange(String),
    /// Others changed the same thing meanwhile, again and again: ABORTED, to retry.
    Contended(String),
    /// Something this service depends on is down or busy: UNAVAILABLE, to retry.
    Unavailable(String),
    /// Stored data no longer reads: DATA_LOSS.
    Corrupt(String),
    /// A bug or a broken invariant here: INTERNAL.
    Internal(String),
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Status {
        match f {
            Failure::Invalid { field, reason } => crate::args::invalid(&field, reason),
            Failure::NotFound(m) => Status::not_found(m),
            Failure::Precondition(m) => Status::failed_precondition(m),
            Failure::OutOfRange(m) => Status::out_of_range(m),
            Failure::Contended(m) => Status::aborted(m),
            Failure::Unavailable(m) => Status::unavailable(m),
            Failure::Corrupt(m) => {
                tracing::error!(error = m, "stored data unreadable");
                Status::data_loss(m)
            }
            Failure::Internal(m) => {
                tracing::error!(error = m, "internal failure");
                Status::internal(m)
            }
        }
    }
}

/// How a database error is answered: a transient one (the connection lost or refused, the
/// pool exhausted, a timeout, a serialization failure or deadlock, a busy SQLite) as
/// UNAVAILABLE, to retry; anything else (a constraint violated, a statement PostgreSQL
/// refuses) as INTERNAL, since retrying cannot help. `store` names the store in the message.
pub fn database(error: &rapport_storage::sea_orm::DbErr, store: &str) -> Failure {
    if is_transient(error) {
        tracing::warn!(%error, store, "database unavailable");
        Failure::Unavailable(format!("{store} unavailable, retry"))
    } else {
        Failure::Internal(format!("{store} failed: {error}"))
    }
}

/// Whether retrying the same statement later may succeed.
pub fn is_transient(error: &rapport_storage::sea_orm::DbErr) -> bool {
    use rapport_storage::sea_orm::{DbErr, RuntimeErr, sqlx};
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_error.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().as_deref().is_some_and(transient_code),
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs and SQLite's result codes of errors that pass.
fn transient_code(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources; 57P0x: the server shutting down
    // or restarting; 40001 serialization failure; 40P01 deadlock; 55P03 lock not available;
    // SQLite 5 (BUSY) and 6 (LOCKED), with their extended codes.
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || matches!(code, "40001" | "40P01" | "55P03")
        // SQLite's codes are numbers of up to four digits; PostgreSQL's are five characters.
        || (code.len() < 5 && code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// The code a failure is answered with.
    fn code(f: &Failure) -> Code {
        Status::from(f.clone()).code()
    }

    #[test]
    fn each_failure_has_its_code() {
        let cases = [
            (
                Failure::Invalid {
                    field: "f".into(),
                    reason: "r".into(),
                },
                Code::InvalidArgument,
            ),
            (Failure::NotFound("x".into()), Code::NotFound),
            (Failure::Precondition("x".into()), Code::FailedPrecondition),
            (Failure::OutOfRange("x".into()), Code::OutOfRange),
            (Failure::Contended("x".into()), Code::Aborted),
            (Failure::Unavailable("x".into()), Code::Unavailable),
            (Failure::Corrupt("x".into()), Code::DataLoss),
            (Failure::Internal("x".into()), Code::Internal),
        ];
        for (failure, expected) in cases {
            assert_eq!(code(&failure), expected, "{failure:?}");
        }
    }

    #[test]
    fn only_passing_database_errors_are_unavailable() {
        for transient in [
            "08006", "08001", "53300", "57P01", "40001", "40P01", "55P03", "5", "517", "6",
        ] {
            assert!(transient_code(transient), "{transient}");
        }
        for lasting in [
            "23505", "23503", "42P01", "22001", "22021", "19", "2067", "1",
        ] {
            assert!(!transient_code(lasting), "{lasting}");
        }
        let refused = rapport_storage::sea_orm::DbErr::Conn(
            rapport_storage::sea_orm::RuntimeErr::Internal("refused".into()),
        );
        assert_eq!(code(&database(&refused, "store")), Code::Unavailable);
        let constraint = rapport_storage::sea_orm::DbErr::Custom("constraint".into());
        assert_eq!(code(&database(&constraint, "store")), Code::Internal);
    }
}
