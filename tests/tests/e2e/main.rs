//! End-to-end tests, one binary (one link of tonic and sea-orm, not one per file): each module
//! runs real processes against throwaway PostgreSQL, Redis and OTLP receivers.

// Tests date their events by the system clock, as producers do.
#![allow(clippy::disallowed_methods)]

mod alerting;
mod backtest;
mod cdnow_import;
mod concurrency;
mod console;
mod crash;
mod distributed;
mod embedded;
mod health;
mod ingestion;
mod isolation;
mod keys;
mod kpis;
mod lifetimes_cross_check;
mod limits;
mod models;
mod nothing_lost;
mod notifications;
mod python_client;
mod redis_outage;
mod replicas;
mod segmentation_schedule;
mod tls;
mod tracing;
mod transactions;
mod walkthrough;
