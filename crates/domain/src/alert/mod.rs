//! Risk alerts: the rules and their configuration, what alerting knows of a customer, the
//! state machine of one alert, playbooks, who hears of alerts and when, and the identity of an
//! alert.

pub mod config;
pub mod facts;
pub mod notify;
pub mod playbook;
pub mod priority;
pub mod rules;

pub use config::{AlertConfig, ConfigError, MAX_SNOOZE_SECS, RuleKind, Severity};
pub use facts::{Facts, Signals};
pub use rules::{Condition, CustomerAlerts, Effect, Holds, Step, Track, conditions};

/// The deterministic deduplication key of (tenant, rule, customer, discriminator): never
/// built from values or severity, so every re-trigger of a condition finds the same alert.
pub fn dedup_key(tenant: &str, rule: &str, customer_id: &str, discriminator: &str) -> String {
    // Lengths make the key unambiguous whatever characters the ids contain.
    format!(
        "{}:{tenant}/{}:{rule}/{}:{customer_id}/{}:{discriminator}",
        tenant.len(),
        rule.len(),
        customer_id.len(),
        discriminator.len()
    )
}

/// The key of a (rule, discriminator) track within one customer's facts.
pub fn track_key(rule: RuleKind, discriminator: &str) -> String {
    format!("{}/{discriminator}", rule.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_do_not_collide_on_separators() {
        assert_ne!(
            dedup_key("a/b", "r", "c", ""),
            dedup_key("a", "r", "b/c", "")
        );
        assert_ne!(dedup_key("t", "r", "c", "d"), dedup_key("t", "r", "c", ""));
        assert_eq!(dedup_key("t", "r", "c", "x"), dedup_key("t", "r", "c", "x"));
    }
}
