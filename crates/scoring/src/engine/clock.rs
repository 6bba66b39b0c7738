//! The time scoring works at: the system clock, or a settable one for tests and replays.

use super::*;

/// The time scoring works at: the system clock, or a settable one for tests and replays.
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
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Some(t) => {
                DateTime::from_timestamp_millis(t.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
            }
            None => Utc::now(),
        }
    }
}
