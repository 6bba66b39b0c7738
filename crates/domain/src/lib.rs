//! Rapport's domain logic, free of I/O so that every rule can be tested alone.
//!
//! Transport (tonic) and storage (sea-orm, redis) live in the service crates; they convert to
//! and from the types here and call these functions.

pub mod alert;
pub mod backtest;
pub mod effect;
pub mod event;
pub mod kpi;
pub mod lifecycle;
pub mod metrics;
pub mod models;
pub mod rank;
pub mod rfm;
pub mod scorecard;
pub mod segment;
pub mod standing;
pub mod tier;
pub mod version;
