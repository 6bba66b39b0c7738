//! Custom segments: named predicates in CEL (Common Expression Language) over a customer's
//! indicators, health score, tier, lifecycle stage and RFM grade.
//!
//! An expression is checked when it is defined: it must parse, and every variable it names
//! must be one of [`VARIABLES`]. Counts are integers and amounts doubles (CEL compares the
//! two freely); a value a customer does not have (P(alive) before the models are fitted, say)
//! is `null`, and an expression that cannot be evaluated for a customer does not select it.

use crate::lifecycle::Stage;
use crate::rfm::{RfmScore, RfmSegment};
use crate::tier::Tier;
use cel::objects::Value;
use cel::{Context, Program};
use std::sync::Arc;

/// The variables an expression may use, with what they hold.
pub const VARIABLES: [(&str, &str); 17] = [
    (
        "recency_days",
        "days since the last purchase day (double; null before one)",
    ),
    ("frequency", "orders ever (int)"),
    ("monetary", "order value ever, net of refunds (double)"),
    ("purchase_days", "distinct purchase days (int; RFM's F)"),
    ("spend", "value of those purchase days (double; RFM's M)"),
    (
        "tenure_days",
        "days since the first purchase day (double; null before one)",
    ),
    (
        "clv",
        "predicted 12-month CLV (double; null before the models are fitted)",
    ),
    (
        "p_alive",
        "probability the customer is still active (double; null likewise)",
    ),
    (
        "score",
        "health score 0–100 (double; null before the first)",
    ),
    ("tier", "vip, gold, silver, bronze or regular (string)"),
    (
        "stage",
        "prospect, new, active, at_risk, dormant, churned or reactivated (string)",
    ),
    (
        "rfm_segment",
        "named RFM segment, e.g. \"Champions\" (string)",
    ),
    ("r", "RFM recency score 1–5 (int)"),
    ("f", "RFM frequency score 1–5 (int)"),
    ("m", "RFM monetary score 1–5 (int)"),
    (
        "nps_category",
        "promoter, passive or detractor (string; empty without an answer)",
    ),
    (
        "cancelled",
        "the subscription was cancelled and nothing bought since (bool)",
    ),
];

/// What an expression sees of one customer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentInput {
    pub recency_days: Option<f64>,
    pub frequency: u64,
    pub monetary: f64,
    pub purchase_days: u64,
    pub spend: f64,
    pub tenure_days: Option<f64>,
    pub clv: Option<f64>,
    pub p_alive: Option<f64>,
    pub score: Option<f64>,
    pub tier: Option<Tier>,
    pub stage: Option<Stage>,
    pub rfm: RfmScore,
    pub nps_category: String,
    pub cancelled: bool,
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    /// It does not parse: where (line and column, from 1) and why.
    #[error("{line}:{column}: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    /// It names a variable customers do not have.
    #[error("unknown variable {name:?} (known: {known})")]
    UnknownVariable { name: String, known: String },
    /// The segment's name is empty, too long or has characters other than letters, digits,
    /// `_` and `-`.
    #[error("name: {0}")]
    Name(String),
}

/// A checked segment definition, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub expression: String,
    program: Arc<Program>,
}

impl Segment {
    /// Checks and compiles a definition.
    pub fn compile(name: &str, expression: &str) -> Result<Segment, SegmentError> {
        let name_ok = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(SegmentError::Name(
                "1 to 100 letters, digits, '_' or '-'".to_owned(),
            ));
        }
        let program = Program::compile(expression).map_err(|errors| {
            let first = errors.errors.first();
            let (line, column) = first.map_or((0, 0), |e| e.pos);
            SegmentError::Syntax {
                // The parser counts lines from 1 and columns from 0.
                line: line.max(1) as usize,
                column: column.max(0) as usize + 1,
                reason: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
            }
        })?;
        let known: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        let mut unknown: Vec<String> = program
            .references()
            .variables()
            .into_iter()
            .filter(|v| !known.contains(v))
            .map(str::to_owned)
            .collect();
        unknown.sort();
        if let Some(name) = unknown.into_iter().next() {
            return Err(SegmentError::UnknownVariable {
                name,
                known: known.join(", "),
            });
        }
        Ok(Segment {
            name: name.to_owned(),
            expression: expression.to_owned(),
            program: Arc::new(program),
        })
    }

    /// Whether the customer of `bindings` belongs: the expression is `true` for it (an error or
    /// a value other than a boolean does not select it).
    pub fn selects(&self, bindings: &Bindings) -> bool {
        matches!(self.program.execute(&bindings.0), Ok(Value::Bool(true)))
    }
}

/// One customer's values bound to the variable names, made once and shared by every segment.
pub struct Bindings(Context<'static, 'static>);

impl SegmentInput {
    /// The customer's values under the names of [`VARIABLES`].
    pub fn bindings(&self) -> Bindings {
        let mut ctx = Context::default();
        for (name, value) in self.values() {
            ctx.add_variable_from_value(name, value);
        }
        Bindings(ctx)
    }

    /// Each variable's value, in the order of [`VARIABLES`].
    fn values(&self) -> [(&'static str, Value); VARIABLES.len()] {
        let opt = |v: Option<f64>| v.map_or(Value::Null, Value::Float);
        let text = |s: &str| Value::String(Arc::new(s.to_owned()));
        [
            ("recency_days", opt(self.recency_days)),
            ("frequency", Value::Int(self.frequency as i64)),
            ("monetary", Value::Float(self.monetary)),
            ("purchase_days", Value::Int(self.purchase_days as i64)),
            ("spend", Value::Float(self.spend)),
            ("tenure_days", opt(self.tenure_days)),
            ("clv", opt(self.clv)),
            ("p_alive", opt(self.p_alive)),
            ("score", opt(self.score)),
            ("tier", text(self.tier.map_or("", Tier::name))),
            ("stage", text(self.stage.map_or("", Stage::name))),
            ("rfm_segment", text(RfmSegment::of(self.rfm).name())),
            ("r", Value::Int(i64::from(self.rfm.r))),
            ("f", Value::Int(i64::from(self.rfm.f))),
            ("m", Value::Int(i64::from(self.rfm.m))),
            ("nps_category", text(&self.nps_category)),
            ("cancelled", Value::Bool(self.cancelled)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of customers (splitmix64).
    fn customers(n: usize) -> Vec<SegmentInput> {
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..n)
            .map(|_| {
                let orders = next() % 12;
                let tiers = [
                    Tier::Vip,
                    Tier::Gold,
                    Tier::Silver,
                    Tier::Bronze,
                    Tier::Regular,
                ];
                let stages = [Stage::Active, Stage::AtRisk, Stage::Dormant, Stage::Churned];
                let fitted = next() % 3 != 0;
                SegmentInput {
                    recency_days: (orders > 0).then(|| (next() % 400) as f64),
                    frequency: orders,
                    monetary: (next() % 200_000) as f64 / 100.0,
                    purchase_days: orders,
                    spend: (next() % 200_000) as f64 / 100.0,
                    tenure_days: (orders > 0).then(|| (next() % 800) as f64),
                    clv: fitted.then(|| (next() % 50_000) as f64 / 100.0),
                    p_alive: fitted.then(|| (next() % 1000) as f64 / 1000.0),
                    score: Some((next() % 1001) as f64 / 10.0),
                    tier: Some(tiers[(next() % 5) as usize]),
                    stage: Some(stages[(next() % 4) as usize]),
                    rfm: RfmScore {
                        r: 1 + (next() % 5) as u8,
                        f: 1 + (next() % 5) as u8,
                        m: 1 + (next() % 5) as u8,
                    },
                    nps_category: ["", "promoter", "passive", "detractor"][(next() % 4) as usize]
                        .into(),
                    cancelled: next() % 10 == 0,
                }
            })
            .collect()
    }

    #[test]
    fn cel_selects_what_the_hand_written_filter_selects() {
        type Filter = fn(&SegmentInput) -> bool;
        let cases: [(&str, Filter); 5] = [
            (
                r#"tier in ["vip", "gold"] && score < 50.0 && stage != "churned""#,
                |c| {
                    matches!(c.tier, Some(Tier::Vip | Tier::Gold))
                        && c.score.is_some_and(|s| s < 50.0)
                        && c.stage != Some(Stage::Churned)
                },
            ),
            ("frequency >= 2 && monetary > 500", |c| {
                c.frequency >= 2 && c.monetary > 500.0
            }),
            ("p_alive != null && p_alive < 0.3 && clv > 100.0", |c| {
                c.p_alive.is_some_and(|p| p < 0.3) && c.clv.is_some_and(|v| v > 100.0)
            }),
            (
                r#"(r <= 2 && f >= 4) || rfm_segment == "Champions" || nps_category == "detractor""#,
                |c| {
                    (c.rfm.r <= 2 && c.rfm.f >= 4)
                        || RfmSegment::of(c.rfm) == RfmSegment::Champions
                        || c.nps_category == "detractor"
                },
            ),
            (
                "!cancelled && recency_days != null && recency_days > 180.0",
                |c| !c.cancelled && c.recency_days.is_some_and(|d| d > 180.0),
            ),
        ];
        let population = customers(5_000);
        for (expression, filter) in cases {
            let segment = Segment::compile("s", expression).unwrap();
            let by_cel: Vec<usize> = (0..population.len())
                .filter(|i| segment.selects(&population[*i].bindings()))
                .collect();
            let by_hand: Vec<usize> = (0..population.len())
                .filter(|i| filter(&population[*i]))
                .collect();
            assert!(!by_hand.is_empty(), "{expression} selects someone");
            assert_eq!(by_cel, by_hand, "{expression}");
        }
    }

    #[test]
    fn every_declared_variable_is_bound() {
        let bound: Vec<&str> = SegmentInput::default()
            .values()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        let declared: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(bound, declared);
    }

    #[test]
    fn a_missing_value_does_not_select() {
        let s = Segment::compile("s", "p_alive < 0.5").unwrap();
        assert!(!s.selects(&SegmentInput::default().bindings()));
        let not_bool = Segment::compile("s", "score").unwrap();
        let scored = SegmentInput {
            score: Some(1.0),
            ..SegmentInput::default()
        };
        assert!(!not_bool.selects(&scored.bindings()));
    }

    #[test]
    fn invalid_expressions_say_where_and_why() {
        match Segment::compile("s", "score < ") {
            Err(SegmentError::Syntax { line, column, .. }) => {
                assert_eq!(line, 1);
                assert!(column >= 7, "column {column}");
            }
            other => panic!("{other:?}"),
        }
        match Segment::compile("s", "score < 50 &&\n  tierr == \"vip\"") {
            Err(SegmentError::UnknownVariable { name, .. }) => assert_eq!(name, "tierr"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Segment::compile("bad name", "true"),
            Err(SegmentError::Name(_))
        ));
    }
}
