//! Per-customer metrics, folded incrementally from events in any order, and the indicators
//! read off them at a point in time.
//!
//! Folding is commutative: every field is a sum, a min/max, a latest-by-event-time value or a
//! set pruned relative to its own newest element, so the metrics after a set of events do not
//! depend on the order the events arrived in, as long as the events lie within
//! [`MEMORY_DAYS`] of each other (what is older is forgotten, and a very late event about a
//! forgotten ticket or invoice starts it afresh). Nothing here re-reads a customer's history.

use crate::event::{
    EngagementKind, Event, Payload, Profile, SubscriptionChange, SurveyKind, TicketStatus,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far back windowed memories reach, relative to their newest element: the longest window
/// (365 days) plus the 30 days before it that a trend compares against.
pub const MEMORY_DAYS: i64 = 395;

/// The longest window a measure may ask for.
pub const MAX_WINDOW_DAYS: u32 = 365;

/// One CSAT or CES answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SurveyAnswer {
    pub kind: SurveyKind,
    pub score: i32,
    pub at: DateTime<Utc>,
}

/// What is known of one support ticket. Times are the earliest opening and first response and
/// the latest resolution and reopening, so status events may arrive in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketTimes {
    pub opened: Option<DateTime<Utc>>,
    pub first_response: Option<DateTime<Utc>>,
    pub resolved: Option<DateTime<Utc>>,
    pub reopened: Option<DateTime<Utc>>,
}

impl TicketTimes {
    /// The ticket's earliest known time (used for windows and pruning).
    fn anchor(&self) -> Option<DateTime<Utc>> {
        [
            self.opened,
            self.first_response,
            self.resolved,
            self.reopened,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Open unless its latest resolution came after its latest reopening.
    fn is_open(&self) -> bool {
        match (self.resolved, self.reopened) {
            (None, _) => true,
            (Some(resolved), Some(reopened)) => reopened > resolved,
            (Some(_), None) => false,
        }
    }
}

/// One invoice: due date, payment date once paid, amount.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub due_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub amount: f64,
}

/// One subscription change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChange {
    pub at: DateTime<Utc>,
    pub change: SubscriptionChange,
    pub plan: String,
    pub mrr: f64,
}

/// Engagement counts of one day, by kind (in [`EngagementKind::ALL`] order).
pub type EngagementDay = [u64; 6];

/// Everything scoring knows about one customer, updated one event at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerMetrics {
    pub first_order_at: Option<DateTime<Utc>>,
    pub last_order_at: Option<DateTime<Utc>>,
    pub orders: u64,
    /// Order value, before refunds.
    pub monetary_total: f64,
    /// The NPS answer with the latest event time, and that time.
    pub latest_nps: Option<(i32, DateTime<Utc>)>,
    /// Times of the recent complaints.
    pub complaint_times: Vec<DateTime<Utc>>,
    /// Order value per purchase day (UTC), for the customer-base models and windowed spend.
    #[serde(default)]
    pub purchase_days: BTreeMap<NaiveDate, f64>,
    /// Orders per purchase day, for windowed order counts.
    #[serde(default)]
    pub order_days: BTreeMap<NaiveDate, u64>,
    /// Time of the customer's earliest event of any kind (tenure).
    #[serde(default)]
    pub first_seen_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub refunds_total: f64,
    /// Recent CSAT and CES answers.
    #[serde(default)]
    pub survey_answers: Vec<SurveyAnswer>,
    /// Recent tickets by ticket id.
    #[serde(default)]
    pub tickets: BTreeMap<String, TicketTimes>,
    /// Recent engagement per day.
    #[serde(default)]
    pub engagement_days: BTreeMap<NaiveDate, EngagementDay>,
    /// Recent subscription changes (the latest one is always kept).
    #[serde(default)]
    pub plan_changes: Vec<PlanChange>,
    /// Unpaid invoices, and the recent paid ones.
    #[serde(default)]
    pub invoices: BTreeMap<String, Invoice>,
    /// The latest known value of each profile attribute.
    #[serde(default)]
    pub profile: ProfileState,
}

/// A value with the event time that set it; the latest time wins, and on equal times the
/// larger value, so the result does not depend on arrival order.
pub type Latest<T> = Option<(T, DateTime<Utc>)>;

fn merge_latest<T: PartialOrd>(slot: &mut Latest<T>, value: T, at: DateTime<Utc>) {
    let replace = match slot {
        None => true,
        Some((old, t)) => at > *t || (at == *t && value > *old),
    };
    if replace {
        *slot = Some((value, at));
    }
}

/// Profile attributes, each with the time it was last set (empty values set nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    pub region: Latest<String>,
    pub industry: Latest<String>,
    pub acquisition_channel: Latest<String>,
    pub owner: Latest<String>,
    pub acquisition_cost: Latest<f64>,
}

impl ProfileState {
    fn apply(&mut self, p: &Profile, at: DateTime<Utc>) {
        for (slot, value) in [
            (&mut self.region, &p.region),
            (&mut self.industry, &p.industry),
            (&mut self.acquisition_channel, &p.acquisition_channel),
            (&mut self.owner, &p.owner),
        ] {
            if !value.is_empty() {
                merge_latest(slot, value.clone(), at);
            }
        }
        if let Some(cost) = p.acquisition_cost {
            merge_latest(&mut self.acquisition_cost, cost, at);
        }
    }
}

/// Keeps the elements of `items` within [`MEMORY_DAYS`] of the newest one.
fn prune_by<T>(items: &mut Vec<T>, time: impl Fn(&T) -> DateTime<Utc>) {
    if let Some(newest) = items.iter().map(&time).max() {
        let horizon = newest - Duration::days(MEMORY_DAYS);
        items.retain(|i| time(i) > horizon);
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn latest(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.max(b)))
}

impl CustomerMetrics {
    /// Folds one event in; events may arrive late and out of order.
    pub fn apply(&mut self, event: &Event) {
        let at = event.occurred_at;
        self.first_seen_at = earliest(self.first_seen_at, at);
        match &event.payload {
            Payload::Order { amount, .. } => {
                self.orders += 1;
                self.monetary_total += amount;
                self.first_order_at = earliest(self.first_order_at, at);
                self.last_order_at = latest(self.last_order_at, at);
                *self.purchase_days.entry(at.date_naive()).or_default() += amount;
                *self.order_days.entry(at.date_naive()).or_default() += 1;
            }
            // Kept apart from orders so that a refund that arrives before its order
            // still counts: net value is taken only when read.
            Payload::Refund { amount, .. } => self.refunds_total += amount,
            Payload::Survey {
                kind: SurveyKind::Nps,
                score,
                ..
            } => {
                merge_latest(&mut self.latest_nps, *score, at);
            }
            Payload::Survey { kind, score, .. } => {
                self.survey_answers.push(SurveyAnswer {
                    kind: *kind,
                    score: *score,
                    at,
                });
                self.survey_answers
                    .sort_by_key(|a| (a.at, a.kind as u8, a.score));
                prune_by(&mut self.survey_answers, |a| a.at);
            }
            Payload::Complaint { .. } => {
                self.complaint_times.push(at);
                self.complaint_times.sort();
                prune_by(&mut self.complaint_times, |t| *t);
            }
            Payload::SupportTicket {
                ticket_id, status, ..
            } => {
                let t = self.tickets.entry(ticket_id.clone()).or_default();
                match status {
                    TicketStatus::Opened => t.opened = earliest(t.opened, at),
                    TicketStatus::FirstResponse => {
                        t.first_response = earliest(t.first_response, at)
                    }
                    TicketStatus::Resolved => t.resolved = latest(t.resolved, at),
                    TicketStatus::Reopened => t.reopened = latest(t.reopened, at),
                }
                self.prune_tickets();
            }
            Payload::Engagement { kind, count, .. } => {
                let day = self.engagement_days.entry(at.date_naive()).or_default();
                day[kind.index()] += u64::from(*count);
                if let Some(newest) = self.engagement_days.keys().next_back().copied() {
                    let horizon = newest - Duration::days(MEMORY_DAYS);
                    self.engagement_days.retain(|d, _| *d > horizon);
                }
            }
            Payload::Subscription {
                plan, change, mrr, ..
            } => {
                self.plan_changes.push(PlanChange {
                    at,
                    change: *change,
                    plan: plan.clone(),
                    mrr: *mrr,
                });
                // Same-time changes keep a fixed order, so the latest one is well defined.
                self.plan_changes.sort_by(|a, b| {
                    (a.at, a.change as u8, &a.plan)
                        .partial_cmp(&(b.at, b.change as u8, &b.plan))
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                prune_by(&mut self.plan_changes, |c| c.at);
            }
            Payload::Payment {
                invoice_id,
                due_at,
                paid_at,
                amount,
                ..
            } => {
                let invoice = self.invoices.entry(invoice_id.clone()).or_insert(Invoice {
                    due_at: *due_at,
                    paid_at: None,
                    amount: *amount,
                });
                invoice.due_at = invoice.due_at.max(*due_at);
                invoice.amount = invoice.amount.max(*amount);
                if let Some(paid) = paid_at {
                    invoice.paid_at = latest(invoice.paid_at, *paid);
                }
                self.prune_invoices();
            }
            Payload::Profile(profile) => self.profile.apply(profile, at),
        }
    }

    fn prune_tickets(&mut self) {
        let newest = self.tickets.values().filter_map(TicketTimes::anchor).max();
        if let Some(newest) = newest {
            let horizon = newest - Duration::days(MEMORY_DAYS);
            self.tickets
                .retain(|_, t| t.anchor().is_some_and(|a| a > horizon));
        }
    }

    /// Paid invoices are forgotten after the memory horizon; unpaid ones are kept, since
    /// they are still owed.
    fn prune_invoices(&mut self) {
        if let Some(newest) = self.invoices.values().map(|i| i.due_at).max() {
            let horizon = newest - Duration::days(MEMORY_DAYS);
            self.invoices
                .retain(|_, i| i.paid_at.is_none() || i.due_at > horizon);
        }
    }

    /// The customer's purchases up to and including `day`, as RFM and lifecycle rules read them.
    pub fn purchases_until(&self, day: NaiveDate) -> PurchaseFacts {
        let bought = self.purchase_days.range(..=day);
        let days_to = |d: &NaiveDate| (day - *d).num_days() as f64;
        PurchaseFacts {
            days_since_first: bought.clone().next().map(|(d, _)| days_to(d)),
            days_since_last: bought.clone().next_back().map(|(d, _)| days_to(d)),
            purchase_days: bought.clone().count() as u64,
            spend: bought.map(|(_, v)| v).sum(),
        }
    }

    /// Order value net of refunds, never below zero.
    pub fn net_monetary(&self) -> f64 {
        (self.monetary_total - self.refunds_total).max(0.0)
    }

    /// When the customer churned: the latest subscription change is a cancellation and no
    /// order came after it.
    pub fn churned_at(&self) -> Option<DateTime<Utc>> {
        let last = self.plan_changes.last()?;
        (last.change == SubscriptionChange::Cancel
            && self.last_order_at.is_none_or(|o| o <= last.at))
        .then_some(last.at)
    }

    /// The latest NPS answer's category.
    pub fn nps_category(&self) -> Option<NpsCategory> {
        self.latest_nps.map(|(s, _)| NpsCategory::of(s))
    }

    /// The raw value of `indicator` at `now` over a window of `window_days` (ignored by
    /// indicators without a window); `None` when the customer has no data for it.
    pub fn value(
        &self,
        indicator: Indicator,
        window_days: u32,
        now: DateTime<Utc>,
        external: &External,
    ) -> Option<f64> {
        let since = now - Duration::days(i64::from(window_days));
        let in_window = |t: DateTime<Utc>| t > since && t <= now;
        let day_in_window = |d: NaiveDate| d > since.date_naive() && d <= now.date_naive();
        use Indicator::*;
        match indicator {
            RecencyDays => self.last_order_at.map(|t| whole_days(now - t)),
            TenureDays => self.first_seen_at.map(|t| whole_days(now - t)),
            Orders => Some(
                self.order_days
                    .iter()
                    .filter(|(d, _)| day_in_window(**d))
                    .map(|(_, n)| *n as f64)
                    .sum(),
            ),
            OrdersTotal => Some(self.orders as f64),
            Spend => Some(
                self.purchase_days
                    .iter()
                    .filter(|(d, _)| day_in_window(**d))
                    .map(|(_, v)| v)
                    .sum(),
            ),
            Monetary => Some(self.net_monetary()),
            AverageOrderValue => {
                (self.orders > 0).then(|| self.net_monetary() / self.orders as f64)
            }
            Repurchase => {
                (!self.purchase_days.is_empty()).then_some(if self.purchase_days.len() > 1 {
                    1.0
                } else {
                    0.0
                })
            }
            Nps => self.latest_nps.map(|(s, _)| f64::from(s)),
            Csat => {
                let answers: Vec<i32> = self.answers(SurveyKind::Csat, &in_window);
                (!answers.is_empty()).then(|| {
                    100.0 * answers.iter().filter(|s| **s >= 4).count() as f64
                        / answers.len() as f64
                })
            }
            Ces => {
                let answers = self.answers(SurveyKind::Ces, &in_window);
                (!answers.is_empty()).then(|| {
                    answers.iter().map(|s| f64::from(*s)).sum::<f64>() / answers.len() as f64
                })
            }
            Complaints => Some(
                self.complaint_times
                    .iter()
                    .filter(|t| in_window(**t))
                    .count() as f64,
            ),
            ComplaintRate => {
                let orders = self.value(Orders, window_days, now, external)?;
                let complaints = self.value(Complaints, window_days, now, external)?;
                (orders > 0.0).then(|| complaints / orders)
            }
            Tickets => Some(
                self.tickets
                    .values()
                    .filter(|t| t.anchor().is_some_and(in_window))
                    .count() as f64,
            ),
            OpenTickets => Some(self.tickets.values().filter(|t| t.is_open()).count() as f64),
            FirstResponseHours => median(
                self.tickets
                    .values()
                    .filter_map(|t| match (t.opened, t.first_response) {
                        (Some(o), Some(r)) if in_window(o) && r >= o => Some(hours(r - o)),
                        _ => None,
                    })
                    .collect(),
            ),
            ResolutionHours => median(
                self.tickets
                    .values()
                    .filter(|t| !t.is_open())
                    .filter_map(|t| match (t.opened, t.resolved) {
                        (Some(o), Some(r)) if in_window(o) && r >= o => Some(hours(r - o)),
                        _ => None,
                    })
                    .collect(),
            ),
            Engagement => (!self.engagement_days.is_empty())
                .then(|| self.engagement_between(now, window_days, None) as f64),
            EngagementTrend => {
                let last = self.engagement_between(now, window_days, None) as f64;
                let before = self.engagement_between(
                    now - Duration::days(i64::from(window_days)),
                    window_days,
                    None,
                ) as f64;
                match (last, before) {
                    (0.0, 0.0) => None,
                    (l, 0.0) => Some(100.0 * l.min(1.0)),
                    (l, b) => Some(100.0 * (l - b) / b),
                }
            }
            CampaignResponseRate => {
                let opens =
                    self.engagement_between(now, window_days, Some(EngagementKind::EmailOpen));
                let responses = self.engagement_between(
                    now,
                    window_days,
                    Some(EngagementKind::CampaignResponse),
                );
                (opens > 0).then(|| 100.0 * responses as f64 / opens as f64)
            }
            DaysPastDue => (!self.invoices.is_empty()).then(|| {
                self.invoices
                    .values()
                    .filter(|i| i.paid_at.is_none() && i.due_at < now)
                    .map(|i| whole_days(now - i.due_at))
                    .fold(0.0, f64::max)
            }),
            LatePayments => (!self.invoices.is_empty()).then(|| {
                self.invoices
                    .values()
                    .filter(|i| in_window(i.due_at))
                    .filter(|i| i.paid_at.map_or(i.due_at < now, |p| p > i.due_at))
                    .count() as f64
            }),
            Upgrades => self.plan_changes_in(SubscriptionChange::Upgrade, &in_window),
            Downgrades => self.plan_changes_in(SubscriptionChange::Downgrade, &in_window),
            Mrr => self.plan_changes.iter().rfind(|c| c.at <= now).map(|c| {
                if c.change == SubscriptionChange::Cancel {
                    0.0
                } else {
                    c.mrr
                }
            }),
            AcquisitionCost => self.profile.acquisition_cost.map(|(c, _)| c),
            PAlive => external.p_alive,
            ExpectedPurchases => external.expected_purchases,
            Clv => external.clv,
            Sentiment => external.sentiment,
        }
    }

    /// When the newest event `indicator` reads happened: how fresh its data is. `None` when
    /// the customer has no such event, or the indicator reads none of the customer's events
    /// (the fitted models' outlook, a manager's sentiment).
    pub fn data_at(&self, indicator: Indicator) -> Option<DateTime<Utc>> {
        use Indicator::*;
        let newest = |times: &mut dyn Iterator<Item = DateTime<Utc>>| times.max();
        match indicator {
            RecencyDays | Orders | OrdersTotal | Spend | Monetary | AverageOrderValue
            | Repurchase => self.last_order_at,
            TenureDays => self.first_seen_at,
            Nps => self.latest_nps.map(|(_, at)| at),
            Csat => newest(&mut self.survey_times(SurveyKind::Csat)),
            Ces => newest(&mut self.survey_times(SurveyKind::Ces)),
            Complaints | ComplaintRate => self.complaint_times.iter().copied().max(),
            Tickets | OpenTickets | FirstResponseHours | ResolutionHours => {
                newest(&mut self.tickets.values().flat_map(|t| {
                    [t.opened, t.first_response, t.resolved, t.reopened]
                        .into_iter()
                        .flatten()
                }))
            }
            // Engagement is kept per day: the day it was last seen, from its start.
            Engagement | EngagementTrend | CampaignResponseRate => self
                .engagement_days
                .keys()
                .next_back()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
            DaysPastDue | LatePayments => newest(
                &mut self
                    .invoices
                    .values()
                    .flat_map(|i| [Some(i.due_at), i.paid_at].into_iter().flatten()),
            ),
            Upgrades | Downgrades | Mrr => self.plan_changes.iter().map(|c| c.at).max(),
            AcquisitionCost => self.profile.acquisition_cost.as_ref().map(|(_, at)| *at),
            PAlive | ExpectedPurchases | Clv | Sentiment => None,
        }
    }

    fn survey_times(&self, kind: SurveyKind) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.survey_answers
            .iter()
            .filter(move |a| a.kind == kind)
            .map(|a| a.at)
    }

    fn answers(&self, kind: SurveyKind, in_window: &impl Fn(DateTime<Utc>) -> bool) -> Vec<i32> {
        self.survey_answers
            .iter()
            .filter(|a| a.kind == kind && in_window(a.at))
            .map(|a| a.score)
            .collect()
    }

    fn plan_changes_in(
        &self,
        change: SubscriptionChange,
        in_window: &impl Fn(DateTime<Utc>) -> bool,
    ) -> Option<f64> {
        (!self.plan_changes.is_empty()).then(|| {
            self.plan_changes
                .iter()
                .filter(|c| c.change == change && in_window(c.at))
                .count() as f64
        })
    }

    /// Engagement of `kind` (all kinds for `None`) on the `days` days ending with `end`'s day.
    fn engagement_between(
        &self,
        end: DateTime<Utc>,
        days: u32,
        kind: Option<EngagementKind>,
    ) -> u64 {
        let last = end.date_naive();
        let first = last - Duration::days(i64::from(days));
        self.engagement_days
            .range(first.succ_opt().unwrap_or(first)..=last)
            .map(|(_, counts)| match kind {
                Some(k) => counts[k.index()],
                None => counts.iter().sum(),
            })
            .sum()
    }
}

fn whole_days(d: Duration) -> f64 {
    (d.num_seconds().max(0) / 86_400) as f64
}

fn hours(d: Duration) -> f64 {
    d.num_seconds() as f64 / 3_600.0
}

/// The median of `values`; none when empty.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// A customer's purchases up to a day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PurchaseFacts {
    /// Whole days from the first and the last purchase day to the day; `None` before any.
    pub days_since_first: Option<f64>,
    pub days_since_last: Option<f64>,
    /// Distinct purchase days, and their order value.
    pub purchase_days: u64,
    pub spend: f64,
}

/// Indicators that do not come from the customer's own events: the tenant's fitted models
/// and a customer-success manager's sentiment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct External {
    pub p_alive: Option<f64>,
    pub expected_purchases: Option<f64>,
    pub clv: Option<f64>,
    /// 0–100, set by hand with an author, a reason and an expiry.
    pub sentiment: Option<f64>,
}

/// The NPS category of an answer: promoter 9–10, passive 7–8, detractor 0–6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpsCategory {
    Promoter,
    Passive,
    Detractor,
}

impl NpsCategory {
    /// The category of an NPS answer.
    pub fn of(score: i32) -> NpsCategory {
        match score {
            9.. => NpsCategory::Promoter,
            7..=8 => NpsCategory::Passive,
            _ => NpsCategory::Detractor,
        }
    }

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            NpsCategory::Promoter => "promoter",
            NpsCategory::Passive => "passive",
            NpsCategory::Detractor => "detractor",
        }
    }
}

macro_rules! indicators {
    ($($variant:ident = $name:literal, windowed: $windowed:literal, $doc:literal;)*) => {
        /// The indicators a scorecard measure can read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Indicator {
            $(#[doc = $doc] $variant,)*
        }

        impl Indicator {
            /// Every indicator.
            pub const ALL: &[Indicator] = &[$(Indicator::$variant),*];

            /// Stable name, as written in scorecards.
            pub fn name(self) -> &'static str {
                match self { $(Indicator::$variant => $name,)* }
            }

            /// Whether the indicator is computed over a window of days.
            pub fn windowed(self) -> bool {
                match self { $(Indicator::$variant => $windowed,)* }
            }

        }
    };
}

indicators! {
    RecencyDays = "recency_days", windowed: false, "Whole days since the last order.";
    TenureDays = "tenure_days", windowed: false, "Whole days since the customer's first event.";
    Orders = "orders", windowed: true, "Orders in the window.";
    OrdersTotal = "orders_total", windowed: false, "Orders ever.";
    Spend = "spend", windowed: true, "Order value in the window (before refunds).";
    Monetary = "monetary", windowed: false, "Order value ever, net of refunds.";
    AverageOrderValue = "average_order_value", windowed: false, "Net order value per order.";
    Repurchase = "repurchase", windowed: false, "1 when the customer bought on two or more days, else 0.";
    Nps = "nps", windowed: false, "The latest NPS answer (0-10).";
    Csat = "csat", windowed: true, "Share of CSAT answers of 4 or 5 in the window, in percent.";
    Ces = "ces", windowed: true, "Mean CES answer (1-7) in the window.";
    Complaints = "complaints", windowed: true, "Complaints in the window.";
    ComplaintRate = "complaint_rate", windowed: true, "Complaints per order in the window.";
    Tickets = "tickets", windowed: true, "Support tickets opened in the window.";
    OpenTickets = "open_tickets", windowed: false, "Support tickets open now.";
    FirstResponseHours = "first_response_hours", windowed: true, "Median hours to first response of tickets opened in the window.";
    ResolutionHours = "resolution_hours", windowed: true, "Median hours to resolution of tickets opened in the window.";
    Engagement = "engagement", windowed: true, "Engagement actions in the window.";
    EngagementTrend = "engagement_trend", windowed: true, "Change of engagement in the window against the window before, in percent.";
    CampaignResponseRate = "campaign_response_rate", windowed: true, "Campaign responses per email opened in the window, in percent.";
    DaysPastDue = "days_past_due", windowed: false, "Whole days the oldest unpaid invoice is past due (0 when none is).";
    LatePayments = "late_payments", windowed: true, "Invoices due in the window paid late or still unpaid past due.";
    Upgrades = "upgrades", windowed: true, "Subscription upgrades in the window.";
    Downgrades = "downgrades", windowed: true, "Subscription downgrades in the window.";
    Mrr = "mrr", windowed: false, "Current monthly recurring revenue (0 once cancelled).";
    AcquisitionCost = "acquisition_cost", windowed: false, "Acquisition cost from the customer's profile.";
    PAlive = "p_alive", windowed: false, "Probability the customer is still active (BG/NBD).";
    ExpectedPurchases = "expected_purchases_90d", windowed: false, "Expected purchases in the next 90 days (BG/NBD).";
    Clv = "clv_12m", windowed: false, "Predicted 12-month customer lifetime value.";
    Sentiment = "csm_sentiment", windowed: false, "A customer-success manager's sentiment, 0-100.";
}

impl Indicator {
    /// Whether the indicator grows with the clock alone (days since something): its daily
    /// drift is implied by time and is no change of the customer's data.
    pub fn elapses(self) -> bool {
        matches!(
            self,
            Indicator::RecencyDays | Indicator::TenureDays | Indicator::DaysPastDue
        )
    }

    /// The indicator of a name written in a scorecard.
    pub fn from_name(name: &str) -> Option<Indicator> {
        Indicator::ALL.iter().copied().find(|i| i.name() == name)
    }

    /// The indicator a scorecard measure's key reads (`nps`, or `complaints_90d` for a
    /// windowed one).
    pub fn of_measure(key: &str) -> Option<Indicator> {
        Indicator::from_name(key).or_else(|| {
            let (name, window) = key.rsplit_once('_')?;
            let days = window.strip_suffix('d')?;
            (!days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()))
                .then(|| Indicator::from_name(name))
                .flatten()
                .filter(|i| i.windowed())
        })
    }
}

/// Days-past-due bucket of a delinquency, as reported to people.
pub fn past_due_bucket(days: f64) -> &'static str {
    match days {
        d if d <= 0.0 => "current",
        d if d <= 30.0 => "1-30",
        d if d <= 60.0 => "31-60",
        d if d <= 90.0 => "61-90",
        _ => "90+",
    }
}

#[cfg(test)]
mod tests;
