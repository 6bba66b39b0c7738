//! What segmentation ranks and grades a customer on (`ListCustomerFeatures`): its purchases,
//! value, survey and payment standing, and the models' outlook, as of an observation end.
//! No I/O.

use crate::store::FeatureRow;
use chrono::{DateTime, Utc};
use rapport_domain::metrics::{External, Indicator, past_due_bucket};
use rapport_domain::models::outlook::FittedModels;
use rapport_domain::models::summary::summarise_days;
use rapport_proto::scoring::v1 as pb;

/// A customer's features as of `end`, with the outlook of the tenant's `models` today (`now`).
pub fn features(
    row: FeatureRow,
    models: Option<&FittedModels>,
    now: DateTime<Utc>,
    end: DateTime<Utc>,
) -> pb::CustomerFeatures {
    let m = &row.state.metrics;
    let outlook = models.and_then(|f| f.outlook(&m.purchase_days, now.date_naive()));
    let bought = m.purchases_until(end.date_naive());
    let past_due = m.value(Indicator::DaysPastDue, 0, end, &External::default());
    pb::CustomerFeatures {
        recency_days: bought.days_since_last,
        first_purchase_days: bought.days_since_first,
        purchase_days: bought.purchase_days,
        spend: bought.spend,
        cancelled: m.churned_at().is_some_and(|t| t <= end),
        p_alive: outlook.map(|o| o.p_alive),
        frequency: m.orders,
        monetary: m.net_monetary(),
        nps_category: m
            .nps_category()
            .map(|c| c.name().to_owned())
            .unwrap_or_default(),
        past_due_bucket: past_due
            .map(|d| past_due_bucket(d).to_owned())
            .unwrap_or_default(),
        clv_12m: outlook.map(|o| o.clv),
        score: row.state.score,
        spend_12m: m
            .value(Indicator::Spend, 365, end, &External::default())
            .unwrap_or(0.0),
        purchases: summarise_days(&m.purchase_days, end.date_naive(), 1.0).map(|s| {
            pb::PurchaseSummary {
                repeat_purchases: s.customer.x,
                first_to_last_days: s.customer.t_x,
                first_to_end_days: s.customer.t,
                mean_repeat_value: s.zbar,
            }
        }),
        customer_id: row.customer_id,
    }
}
