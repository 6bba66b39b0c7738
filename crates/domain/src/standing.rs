//! A customer's standing between grading runs — its tier (with a downgrade waiting for
//! confirmation) and its lifecycle stage since when — and how one run's grade moves it: the
//! decisions of a run, free of storage.

use crate::lifecycle::{Stage, StageFacts, StageRules};
use crate::tier::{Tier, TierState, next_tier};

/// Milliseconds in a day, to count days in a stage.
const DAY_MS: f64 = 86_400_000.0;

/// What a customer keeps from one run to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Standing {
    pub tier: TierState,
    /// The stage and since when (milliseconds since the epoch).
    pub stage: Option<(Stage, i64)>,
}

/// A tier change a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierMove {
    pub from: Option<Tier>,
    pub to: Tier,
    /// A downgrade, confirmed over the runs the hysteresis rule asks for.
    pub downgrade: bool,
}

/// A customer's grade in one run applied to its standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regrade {
    /// The standing after the run.
    pub standing: Standing,
    /// The tier change, when the customer's tier changed.
    pub tier: Option<TierMove>,
    /// The stage change (from, to), when the stage changed (a first stage included).
    pub stage: Option<(Option<Stage>, Stage)>,
}

impl Regrade {
    /// What scoring must hear of the run for this customer: its tier, with its new stage
    /// when that changed; nothing when neither changed or the customer has no tier yet.
    pub fn announcement(&self) -> Option<(Tier, Option<Stage>)> {
        let tier = self.standing.tier.tier?;
        let stage = self.stage.map(|(_, to)| to);
        (self.tier.is_some() || stage.is_some()).then_some((tier, stage))
    }
}

/// Applies a run's grade to `before`: the tier `graded` through the downgrade hysteresis
/// (`confirm_runs`), and the stage the `rules` give the customer's `facts` as of `as_of`
/// (milliseconds), counting the days it has been in its stage. A stage kept keeps its start.
pub fn regrade(
    before: Standing,
    graded: Tier,
    facts: &StageFacts,
    rules: &StageRules,
    as_of: i64,
    confirm_runs: u32,
) -> Regrade {
    let tier = next_tier(before.tier, graded, confirm_runs);
    let in_stage = before
        .stage
        .map(|(s, since)| (s, (as_of - since).max(0) as f64 / DAY_MS));
    let stage = rules.grade(facts, in_stage);
    let old_stage = before.stage.map(|(s, _)| s);
    let stage_changed = old_stage != Some(stage);
    let since = match before.stage {
        Some((_, since)) if !stage_changed => since,
        _ => as_of,
    };
    let tier_move = tier
        .tier
        .filter(|&to| before.tier.tier != Some(to))
        .map(|to| TierMove {
            from: before.tier.tier,
            to,
            downgrade: before.tier.tier.is_some_and(|from| to < from),
        });
    Regrade {
        standing: Standing {
            tier,
            stage: Some((stage, since)),
        },
        tier: tier_move,
        stage: stage_changed.then_some((old_stage, stage)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::DEFAULT_CONFIRM_DOWNGRADE_RUNS as CONFIRM;

    const DAY: i64 = 86_400_000;

    fn active() -> StageFacts {
        StageFacts {
            last_purchase_days: Some(10.0),
            first_purchase_days: Some(400.0),
            ..StageFacts::default()
        }
    }

    fn dormant() -> StageFacts {
        StageFacts {
            last_purchase_days: Some(250.0),
            first_purchase_days: Some(400.0),
            ..StageFacts::default()
        }
    }

    #[test]
    fn a_new_customer_gets_its_tier_and_first_stage_from_the_run() {
        let r = regrade(
            Standing::default(),
            Tier::Gold,
            &active(),
            &StageRules::default(),
            100 * DAY,
            CONFIRM,
        );
        assert_eq!(
            r.tier,
            Some(TierMove {
                from: None,
                to: Tier::Gold,
                downgrade: false
            })
        );
        assert_eq!(r.stage, Some((None, Stage::Active)));
        assert_eq!(r.standing.stage, Some((Stage::Active, 100 * DAY)));
        assert_eq!(r.announcement(), Some((Tier::Gold, Some(Stage::Active))));
    }

    #[test]
    fn a_kept_stage_keeps_its_start_and_announces_nothing() {
        let rules = StageRules::default();
        let first = regrade(
            Standing::default(),
            Tier::Gold,
            &active(),
            &rules,
            100 * DAY,
            CONFIRM,
        );
        let second = regrade(
            first.standing,
            Tier::Gold,
            &active(),
            &rules,
            130 * DAY,
            CONFIRM,
        );
        assert_eq!(second.standing.stage, Some((Stage::Active, 100 * DAY)));
        assert_eq!((second.tier, second.stage), (None, None));
        assert_eq!(second.announcement(), None);
    }

    #[test]
    fn a_downgrade_waits_for_its_confirming_runs_and_says_so() {
        let rules = StageRules::default();
        let mut standing = regrade(
            Standing::default(),
            Tier::Gold,
            &active(),
            &rules,
            0,
            CONFIRM,
        )
        .standing;
        for run in 1..CONFIRM {
            let r = regrade(
                standing,
                Tier::Bronze,
                &active(),
                &rules,
                i64::from(run) * DAY,
                CONFIRM,
            );
            assert_eq!(r.tier, None, "run {run} only counts towards the downgrade");
            assert_eq!(r.standing.tier.tier, Some(Tier::Gold));
            standing = r.standing;
        }
        let r = regrade(
            standing,
            Tier::Bronze,
            &active(),
            &rules,
            i64::from(CONFIRM) * DAY,
            CONFIRM,
        );
        assert_eq!(
            r.tier,
            Some(TierMove {
                from: Some(Tier::Gold),
                to: Tier::Bronze,
                downgrade: true
            })
        );
        assert_eq!(r.announcement(), Some((Tier::Bronze, None)));
    }

    #[test]
    fn a_stage_change_alone_is_announced_with_the_kept_tier() {
        let rules = StageRules::default();
        let first = regrade(
            Standing::default(),
            Tier::Silver,
            &active(),
            &rules,
            0,
            CONFIRM,
        );
        let later = regrade(
            first.standing,
            Tier::Silver,
            &dormant(),
            &rules,
            240 * DAY,
            CONFIRM,
        );
        assert_eq!(later.tier, None);
        assert_eq!(later.stage, Some((Some(Stage::Active), Stage::Dormant)));
        assert_eq!(later.standing.stage, Some((Stage::Dormant, 240 * DAY)));
        assert_eq!(
            later.announcement(),
            Some((Tier::Silver, Some(Stage::Dormant)))
        );
    }
}
