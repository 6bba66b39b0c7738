//! The time a service works at: the system clock, or a settable one for tests, replays and
//! as-of work. Services read the time only through a [`Clock`] (a lint forbids reading the
//! system time elsewhere), so any of their work can be run as of another moment.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The time a service works at: the system clock, or a settable one.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock standing at `at` until set again.
    pub fn fixed(at: DateTime<Utc>) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(at.timestamp_millis()))))
    }

    /// Moves a fixed clock (does nothing to the system clock).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(t) = &self.0 {
            t.store(at.timestamp_millis(), Ordering::SeqCst);
        }
    }

    /// The current time.
    // The one place a service reads the system clock.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Some(t) => {
                DateTime::from_timestamp_millis(t.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
            }
            None => Utc::now(),
        }
    }
}
