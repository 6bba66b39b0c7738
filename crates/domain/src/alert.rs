//! Alert rules and what they decide for one customer's new score.

/// "Health below a threshold", with a higher exit threshold so that an alert does not flap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthBelow {
    /// An alert opens when the score falls below this.
    pub enter_below: f64,
    /// An open alert resolves when the score reaches this (≥ `enter_below`).
    pub exit_at_or_above: f64,
}

impl HealthBelow {
    /// Stable rule name, part of the dedup key.
    pub const NAME: &'static str = "health_below";
}

impl Default for HealthBelow {
    fn default() -> Self {
        HealthBelow {
            enter_below: 50.0,
            exit_at_or_above: 60.0,
        }
    }
}

/// What to do with a customer's alert for a rule after a new score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No open alert and the rule fires: open one.
    Open,
    /// An alert is open and the rule fires again: update it.
    Retrigger,
    /// An alert is open and the exit condition holds: resolve it.
    Resolve,
    /// Nothing changes.
    Keep,
}

impl HealthBelow {
    /// Decides for a new score, given whether an alert is open for this customer and rule.
    pub fn decide(&self, open: bool, score: f64) -> Decision {
        match (
            open,
            score < self.enter_below,
            score >= self.exit_at_or_above,
        ) {
            (false, true, _) => Decision::Open,
            (true, true, _) => Decision::Retrigger,
            (true, false, true) => Decision::Resolve,
            _ => Decision::Keep,
        }
    }
}

/// The deterministic deduplication key of (tenant, rule, customer): never built from values.
pub fn dedup_key(tenant: &str, rule: &str, customer_id: &str) -> String {
    // Lengths make the key unambiguous whatever characters the ids contain.
    format!(
        "{}:{tenant}/{}:{rule}/{}:{customer_id}",
        tenant.len(),
        rule.len(),
        customer_id.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_between_enter_and_exit() {
        let rule = HealthBelow::default();
        assert_eq!(rule.decide(false, 40.0), Decision::Open);
        assert_eq!(rule.decide(true, 45.0), Decision::Retrigger);
        assert_eq!(rule.decide(true, 55.0), Decision::Keep);
        assert_eq!(rule.decide(false, 55.0), Decision::Keep);
        assert_eq!(rule.decide(true, 60.0), Decision::Resolve);
        assert_eq!(rule.decide(false, 90.0), Decision::Keep);
    }

    #[test]
    fn dedup_keys_do_not_collide_on_separators() {
        assert_ne!(dedup_key("a/b", "r", "c"), dedup_key("a", "r", "b/c"));
        assert_eq!(dedup_key("t", "r", "c"), dedup_key("t", "r", "c"));
    }
}
