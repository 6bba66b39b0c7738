//! Grouped notifications. With each alert change, under the tenant's lock, what it means to
//! each endpoint: whether its route takes the alert, which group it joins, whether it is
//! news (`record`). When a group is due, its flush turns it into signed deliveries — the
//! group's changes, a reminder of what still stands, or a backfill's one summary — holding
//! back what silences and inhibitions mute until they no longer do (`Store::flush_due`).

use super::webhooks::{self, Message, route_of};
use super::*;
use crate::entity::{group, notice, silence};
use rapport_domain::alert::notify::{self, BackfillSummary, Labels, Route, Silence};

/// One notifying change of an alert, as the log collects them.
pub(super) struct Noted {
    pub alert: Alert,
    pub change: Change,
    pub revision: i64,
    /// The backfill whose observation made the change.
    pub backfill: Option<String>,
}

/// A group a transaction's changes went to: its labels, the backfill it gathers (if one),
/// and its endpoint's route.
struct TouchedGroup {
    labels: BTreeMap<String, String>,
    backfill: Option<String>,
    route: Route,
}

/// The groups touched, by (endpoint, group key).
type Touched = BTreeMap<(i64, String), TouchedGroup>;

/// Most notices read or written per statement.
const CHUNK: usize = 500;
/// Groups flushed per pass.
const GROUPS_PER_PASS: u64 = 100;
/// Least wait before held-back notices are looked at again.
const RECHECK_MS: i64 = 1_000;

fn labels_of(a: &Alert, stage: Option<Stage>) -> Labels {
    Labels {
        rule: a.rule.clone(),
        severity: a.severity.clone().unwrap_or_default(),
        tier: a.tier.clone().unwrap_or_default(),
        stage: stage.map(|s| s.name().to_owned()).unwrap_or_default(),
        customer: a.customer_id.clone(),
    }
}

fn parse_labels(text: &str) -> Labels {
    serde_json::from_str(text).unwrap_or_default()
}

/// The change an endpoint is to hear of: an alert it has not been told of yet is news as
/// "opened" whatever else happened to it before the group went out.
fn merged(prev: Option<&notice::Model>, change: Change) -> Change {
    let unheard_opening = prev
        .filter(|p| p.pending && !p.announced)
        .and_then(|p| Change::from_name(&p.change))
        .filter(|c| matches!(c, Change::Opened | Change::Reopened));
    match unheard_opening {
        Some(opening) if change != Change::Resolved => opening,
        _ => change,
    }
}

/// Records what a transaction's notifying changes mean to each of the tenant's endpoints,
/// and when each touched group is due. `stages` holds the customers' stages where the
/// caller knows them; the others are read.
pub(super) async fn record(
    txn: &DatabaseTransaction,
    tenant: &str,
    noted: Vec<Noted>,
    stages: &BTreeMap<String, Option<Stage>>,
    now: i64,
) -> Result<(), StoreError> {
    if noted.is_empty() {
        return Ok(());
    }
    let endpoints = webhooks::enabled(txn, tenant).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut stages = stages.clone();
    let missing: BTreeSet<String> = noted
        .iter()
        .map(|n| n.alert.customer_id.clone())
        .filter(|c| !stages.contains_key(c))
        .collect();
    if !missing.is_empty() {
        for (id, ca) in load_customers(txn, tenant, missing).await? {
            stages.insert(id, ca.facts.signals.stage);
        }
    }
    let alert_ids: Vec<i64> = noted
        .iter()
        .map(|n| n.alert.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let webhook_ids: Vec<i64> = endpoints.iter().map(|w| w.id).collect();
    let mut known: BTreeMap<(i64, i64), notice::Model> = BTreeMap::new();
    for chunk in alert_ids.chunks(CHUNK) {
        for n in notice::Entity::find()
            .filter(notice::Column::WebhookId.is_in(webhook_ids.clone()))
            .filter(notice::Column::AlertId.is_in(chunk.to_vec()))
            .all(txn)
            .await?
        {
            known.insert((n.webhook_id, n.alert_id), n);
        }
    }
    let mut written: BTreeMap<(i64, i64), notice::Model> = BTreeMap::new();
    let mut touched: Touched = BTreeMap::new();
    for w in &endpoints {
        let route = route_of(w);
        for n in &noted {
            let stage = stages.get(&n.alert.customer_id).copied().flatten();
            let labels = labels_of(&n.alert, stage);
            let key = (w.id, n.alert.id);
            let prev = written.get(&key).or_else(|| known.get(&key));
            let heard = prev.is_some_and(|p| p.announced);
            // An alert the endpoint has a notice of is followed to its end, whatever its
            // labels became.
            if prev.is_none() && !route.matcher.matches(&labels) {
                continue;
            }
            let change = merged(prev, n.change);
            let backfill = n.backfill.clone().filter(|_| !heard);
            let (group_key, group_labels) = match &backfill {
                Some(b) => {
                    let labels = BTreeMap::from([("backfill".to_owned(), b.clone())]);
                    (notify::group_key(&labels), labels)
                }
                None => route.group(&labels),
            };
            let model = notice::Model {
                webhook_id: w.id,
                alert_id: n.alert.id,
                tenant_id: tenant.to_owned(),
                group_key: group_key.clone(),
                labels: serde_json::to_string(&labels).unwrap_or_default(),
                change: change.name().to_owned(),
                item: webhooks::item(&n.alert, change, n.revision).to_string(),
                pending: true,
                announced: heard,
                changed_at: now,
            };
            written.insert(key, model);
            touched.insert(
                (w.id, group_key),
                TouchedGroup {
                    labels: group_labels,
                    backfill,
                    route: route.clone(),
                },
            );
        }
    }
    let rows: Vec<notice::ActiveModel> = written.into_values().map(Into::into).collect();
    for chunk in rows.chunks(CHUNK) {
        notice::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([notice::Column::WebhookId, notice::Column::AlertId])
                    .update_columns([
                        notice::Column::TenantId,
                        notice::Column::GroupKey,
                        notice::Column::Labels,
                        notice::Column::Change,
                        notice::Column::Item,
                        notice::Column::Pending,
                        notice::Column::Announced,
                        notice::Column::ChangedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    schedule(txn, tenant, touched, now).await
}

/// Stores when each touched group is due: a group already due keeps the earlier time, a
/// backfill's moves on with every change (it goes out once the backfill is quiet).
async fn schedule(
    txn: &DatabaseTransaction,
    tenant: &str,
    touched: Touched,
    now: i64,
) -> Result<(), StoreError> {
    let webhook_ids: BTreeSet<i64> = touched.keys().map(|(w, _)| *w).collect();
    let keys: BTreeSet<String> = touched.keys().map(|(_, k)| k.clone()).collect();
    let mut groups: BTreeMap<(i64, String), group::Model> = BTreeMap::new();
    let keys: Vec<String> = keys.into_iter().collect();
    for chunk in keys.chunks(CHUNK) {
        for g in group::Entity::find()
            .filter(group::Column::WebhookId.is_in(webhook_ids.clone()))
            .filter(group::Column::GroupKey.is_in(chunk.to_vec()))
            .all(txn)
            .await?
        {
            groups.insert((g.webhook_id, g.group_key.clone()), g);
        }
    }
    let mut rows = Vec::with_capacity(touched.len());
    for ((webhook_id, key), t) in touched {
        let TouchedGroup {
            labels,
            backfill,
            route,
        } = t;
        let g = groups.get(&(webhook_id, key.clone()));
        let pending_since = g.and_then(|g| g.pending_since).unwrap_or(now);
        let last_sent = g.and_then(|g| g.last_sent_at);
        let due = route.due_at(backfill.is_some(), pending_since, last_sent, now);
        let due = match g.and_then(|g| g.due_at) {
            Some(earlier) if backfill.is_none() => earlier.min(due),
            _ => due,
        };
        rows.push(group::ActiveModel {
            webhook_id: Set(webhook_id),
            group_key: Set(key),
            tenant_id: Set(tenant.to_owned()),
            labels: Set(serde_json::to_string(&labels).unwrap_or_default()),
            backfill: Set(backfill),
            pending_since: Set(Some(pending_since)),
            last_sent_at: Set(last_sent),
            due_at: Set(Some(due)),
            in_flight: Set(g.and_then(|g| g.in_flight.clone())),
            held: Set(g.map_or(0, |g| g.held)),
        });
    }
    for chunk in rows.chunks(CHUNK) {
        group::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([group::Column::WebhookId, group::Column::GroupKey])
                    .update_columns([
                        group::Column::TenantId,
                        group::Column::Labels,
                        group::Column::Backfill,
                        group::Column::PendingSince,
                        group::Column::DueAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// The tenant's silences in force at `now`.
async fn silences_at(
    txn: &DatabaseTransaction,
    tenant: &str,
    now: i64,
) -> Result<Vec<Silence>, DbErr> {
    Ok(silence::Entity::find()
        .filter(silence::Column::TenantId.eq(tenant))
        .filter(silence::Column::EndsAt.gt(now))
        .filter(silence::Column::StartsAt.lte(now))
        .all(txn)
        .await?
        .into_iter()
        .map(|s| Silence {
            id: s.id,
            matcher: s.matcher(),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
        })
        .collect())
}

/// The labels of the standing alerts of some customers, per customer.
async fn standing_of(
    txn: &DatabaseTransaction,
    tenant: &str,
    customers: BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<(i64, Labels)>>, DbErr> {
    let mut out: BTreeMap<String, Vec<(i64, Labels)>> = BTreeMap::new();
    let customers: Vec<String> = customers.into_iter().collect();
    for chunk in customers.chunks(CHUNK) {
        for a in alert::Entity::find()
            .filter(alert::Column::TenantId.eq(tenant))
            .filter(alert::Column::CustomerId.is_in(chunk.to_vec()))
            .filter(alert::Column::OpenKey.is_not_null())
            .all(txn)
            .await?
        {
            out.entry(a.customer_id.clone())
                .or_default()
                .push((a.id, labels_of(&a, None)));
        }
    }
    Ok(out)
}

/// What one flush of a group does.
#[derive(Default)]
struct Plan {
    /// Items to send, in the order they changed.
    items: Vec<String>,
    /// Notices now heard (pending → announced).
    heard: Vec<i64>,
    /// Notices done with (resolved, or never heard and resolved, or summarised).
    dropped: Vec<i64>,
    /// Notices held back by a silence or an inhibition, and the earliest a silence ends.
    held: usize,
    silence_ends: Option<i64>,
}

/// What mutes notices at one flush: the tenant's silences in force, its inhibitions, and
/// for the customers concerned their standing alerts and current stages.
struct Muting<'a> {
    silences: Vec<Silence>,
    inhibitions: &'a [notify::Inhibition],
    standing: BTreeMap<String, Vec<(i64, Labels)>>,
    stages: BTreeMap<String, Option<Stage>>,
}

impl<'a> Muting<'a> {
    async fn load(
        txn: &DatabaseTransaction,
        tenant: &str,
        inhibitions: &'a [notify::Inhibition],
        customers: BTreeSet<String>,
        now: i64,
    ) -> Result<Muting<'a>, StoreError> {
        let silences = silences_at(txn, tenant, now).await?;
        let (mut standing, mut stages) = (BTreeMap::new(), BTreeMap::new());
        if !inhibitions.is_empty() && !customers.is_empty() {
            standing = standing_of(txn, tenant, customers.clone()).await?;
            stages = load_customers(txn, tenant, customers)
                .await?
                .into_iter()
                .map(|(id, ca)| (id, ca.facts.signals.stage))
                .collect();
        }
        Ok(Muting {
            silences,
            inhibitions,
            standing,
            stages,
        })
    }

    /// The labels of a customer's alert with its current stage, when known.
    fn now_labels(&self, mut labels: Labels) -> Labels {
        if let Some(stage) = self.stages.get(&labels.customer) {
            labels.stage = stage.map(|s| s.name().to_owned()).unwrap_or_default();
        }
        labels
    }

    /// Whether, and by what, a notice is muted at `now`.
    fn of(&self, n: &notice::Model, now: i64) -> Option<notify::Mute> {
        let labels = self.now_labels(parse_labels(&n.labels));
        let others: Vec<Labels> = self
            .standing
            .get(&labels.customer)
            .map(|list| {
                list.iter()
                    .filter(|(id, _)| *id != n.alert_id)
                    .map(|(_, l)| self.now_labels(l.clone()))
                    .collect()
            })
            .unwrap_or_default();
        notify::mute(&labels, &others, self.inhibitions, &self.silences, now)
    }
}

/// How long a group that could not be flushed waits before it is tried again.
const RETRY_MS: i64 = 5_000;

/// When a group whose last deliveries are still pending should be looked at again; `None`
/// when they were all delivered or given up on.
async fn still_sending(
    txn: &DatabaseTransaction,
    g: &group::Model,
    now: i64,
) -> Result<Option<i64>, DbErr> {
    use crate::entity::delivery;
    let ids: Vec<String> = g
        .in_flight
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    if ids.is_empty() {
        return Ok(None);
    }
    let next: Option<i64> = delivery::Entity::find()
        .select_only()
        .column_as(delivery::Column::NextAttemptAt.min(), "next")
        .filter(delivery::Column::WebhookId.eq(g.webhook_id))
        .filter(delivery::Column::MessageId.is_in(ids))
        .filter(delivery::Column::State.eq(webhooks::state::PENDING))
        .into_tuple::<Option<i64>>()
        .one(txn)
        .await?
        .flatten();
    // A delivery being sent shows its lease's end, one being retried its next attempt:
    // look again then, but within a few seconds.
    Ok(next.map(|at| at.clamp(now + RECHECK_MS / 4, now + RECHECK_MS * 5)))
}

/// The body of one delivery of a group's items.
fn envelope(kind: &str, now: i64, data: serde_json::Value) -> String {
    serde_json::json!({
        "type": kind,
        "timestamp": webhooks::rfc3339(now),
        "data": data,
    })
    .to_string()
}

/// A fresh `webhook-id`.
fn message_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

fn customers_of(rows: &[notice::Model]) -> impl Iterator<Item = String> + '_ {
    rows.iter().map(|n| parse_labels(&n.labels).customer)
}

/// Sets when a group is next due.
async fn reschedule(
    txn: &DatabaseTransaction,
    g: &group::Model,
    due: Option<i64>,
) -> Result<(), DbErr> {
    group::Entity::update_many()
        .col_expr(group::Column::DueAt, Expr::value(due))
        .filter(group::Column::WebhookId.eq(g.webhook_id))
        .filter(group::Column::GroupKey.eq(g.group_key.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// A backfill's one summary: what it opened, muted ones counted apart; every notice of
/// the group is done with.
fn summarise(
    backfill: &str,
    g: &group::Model,
    pending: &[notice::Model],
    muting: &Muting<'_>,
    config: &AlertConfig,
    now: i64,
    plan: &mut Plan,
) -> Option<Message> {
    let (mut opened, mut muted) = (Vec::new(), 0);
    for n in pending {
        plan.dropped.push(n.alert_id);
        if n.change == Change::Resolved.name() {
            continue;
        }
        if muting.of(n, now).is_some() {
            muted += 1;
        } else {
            opened.push(parse_labels(&n.labels));
        }
    }
    if opened.is_empty() {
        return None;
    }
    let summary = BackfillSummary::of(backfill, &opened, muted, config);
    let mut data = serde_json::to_value(&summary).unwrap_or_default();
    data["endpoint"] = g.webhook_id.to_string().into();
    data["alerts"] = opened.len().into();
    Some(Message {
        webhook_id: g.webhook_id,
        id: message_id(),
        event_type: "alert.backfill".to_owned(),
        body: envelope("alert.backfill", now, data),
    })
}

/// The group's pending changes that nothing mutes (and the resolutions of alerts the
/// endpoint was told of), in the order they changed.
fn changes(pending: &[notice::Model], muting: &Muting<'_>, now: i64, plan: &mut Plan) {
    let mut pending: Vec<&notice::Model> = pending.iter().collect();
    pending.sort_by_key(|n| (n.changed_at, n.alert_id));
    for n in pending {
        if n.change == Change::Resolved.name() {
            // An endpoint told of an alert hears that it ended, muted or not; one never told
            // of it has nothing to hear.
            if n.announced {
                plan.items.push(n.item.clone());
            }
            plan.dropped.push(n.alert_id);
            continue;
        }
        match muting.of(n, now) {
            Some(mute) => {
                plan.held += 1;
                if let notify::Mute::Silenced { until, .. } = mute {
                    plan.silence_ends = Some(plan.silence_ends.map_or(until, |s| s.min(until)));
                }
            }
            None => {
                plan.items.push(n.item.clone());
                plan.heard.push(n.alert_id);
            }
        }
    }
}

/// The deliveries of a group's items, in parts within the route's size.
fn parts(
    g: &group::Model,
    route: &Route,
    items: Vec<String>,
    reason: &str,
    now: i64,
) -> Vec<Message> {
    let group_labels: serde_json::Value =
        serde_json::from_str(&g.labels).unwrap_or(serde_json::Value::Null);
    let parts = notify::split(items, route.max_bytes, 512);
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let alerts: Vec<serde_json::Value> = part
                .iter()
                .filter_map(|item| serde_json::from_str(item).ok())
                .collect();
            let data = serde_json::json!({
                "endpoint": g.webhook_id.to_string(),
                "group": group_labels,
                "group_key": g.group_key,
                "reason": reason,
                "part": i + 1,
                "parts": count,
                "alerts": alerts,
            });
            Message {
                webhook_id: g.webhook_id,
                id: message_id(),
                event_type: "alert.group".to_owned(),
                body: envelope("alert.group", now, data),
            }
        })
        .collect()
}

impl Store {
    /// Flushes every group due at `now`; answers how many deliveries were queued. A group
    /// that cannot be flushed is logged and tried again later, after the others.
    pub async fn flush_due(&self, now: i64) -> Result<usize, StoreError> {
        let due = group::Entity::find()
            .filter(group::Column::DueAt.lte(now))
            .order_by_asc(group::Column::DueAt)
            .limit(GROUPS_PER_PASS)
            .all(&self.db)
            .await?;
        let mut queued = 0;
        for g in due {
            match self
                .flush(&g.tenant_id, g.webhook_id, &g.group_key, now)
                .await
            {
                Ok(n) => queued += n,
                Err(error) => {
                    tracing::warn!(
                        tenant = g.tenant_id,
                        webhook = g.webhook_id,
                        group = g.group_key,
                        %error,
                        "notification group not flushed; trying again later"
                    );
                    group::Entity::update_many()
                        .col_expr(group::Column::DueAt, Expr::value(now + RETRY_MS))
                        .filter(group::Column::WebhookId.eq(g.webhook_id))
                        .filter(group::Column::GroupKey.eq(g.group_key.as_str()))
                        .filter(group::Column::DueAt.lte(now))
                        .exec(&self.db)
                        .await?;
                }
            }
        }
        Ok(queued)
    }

    /// Flushes one group under its tenant's lock (another replica may have just done it).
    async fn flush(
        &self,
        tenant: &str,
        webhook_id: i64,
        key: &str,
        now: i64,
    ) -> Result<usize, StoreError> {
        let cfg = self.current_config(tenant).await?;
        let txn = rapport_storage::begin_write(&self.db).await?;
        lock_tenant(&txn, tenant).await?;
        let Some(g) = group::Entity::find_by_id((webhook_id, key.to_owned()))
            .one(&txn)
            .await?
            .filter(|g| g.due_at.is_some_and(|d| d <= now))
        else {
            txn.commit().await?;
            return Ok(0);
        };
        // An endpoint hears a group's changes in order: the next flush waits for the last.
        if let Some(wait) = still_sending(&txn, &g, now).await? {
            reschedule(&txn, &g, Some(wait)).await?;
            txn.commit().await?;
            return Ok(0);
        }
        let in_group = || {
            notice::Entity::find()
                .filter(notice::Column::WebhookId.eq(webhook_id))
                .filter(notice::Column::GroupKey.eq(key))
        };
        let endpoint = webhook::Entity::find_by_id(webhook_id)
            .one(&txn)
            .await?
            .filter(|w| w.enabled);
        let Some(endpoint) = endpoint else {
            // A disabled or deleted endpoint hears nothing more.
            notice::Entity::delete_many()
                .filter(notice::Column::WebhookId.eq(webhook_id))
                .filter(notice::Column::GroupKey.eq(key))
                .exec(&txn)
                .await?;
            group::Entity::delete_by_id((webhook_id, key.to_owned()))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            return Ok(0);
        };
        let route = route_of(&endpoint);
        let pending = in_group()
            .filter(notice::Column::Pending.eq(true))
            .all(&txn)
            .await?;
        let reminder_due = g.backfill.is_none()
            && g.last_sent_at
                .and_then(|t| route.repeat_at(t))
                .is_some_and(|t| t <= now);
        // What the endpoint was told of and still stands, read only for a reminder.
        let told = if reminder_due {
            in_group()
                .filter(notice::Column::Pending.eq(false))
                .all(&txn)
                .await?
        } else {
            Vec::new()
        };
        let customers = customers_of(&pending).chain(customers_of(&told)).collect();
        let muting = Muting::load(&txn, tenant, &cfg.config.inhibitions, customers, now).await?;
        let mut plan = Plan::default();
        let mut messages = Vec::new();
        if let Some(backfill) = &g.backfill {
            messages.extend(summarise(
                backfill,
                &g,
                &pending,
                &muting,
                &cfg.config,
                now,
                &mut plan,
            ));
        } else {
            changes(&pending, &muting, now, &mut plan);
            let (items, reason) = if plan.items.is_empty() && reminder_due {
                let still: Vec<String> = told
                    .iter()
                    .filter(|n| muting.of(n, now).is_none())
                    .map(|n| n.item.clone())
                    .collect();
                (still, "repeat")
            } else {
                (std::mem::take(&mut plan.items), "changes")
            };
            messages = parts(&g, &route, items, reason, now);
        }
        let queued = messages.len();
        let sent_ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        let in_flight =
            (!sent_ids.is_empty()).then(|| serde_json::to_string(&sent_ids).unwrap_or_default());
        webhooks::queue(&txn, tenant, messages, now).await?;
        for chunk in plan.heard.chunks(CHUNK) {
            notice::Entity::update_many()
                .col_expr(notice::Column::Pending, Expr::value(false))
                .col_expr(notice::Column::Announced, Expr::value(true))
                .filter(notice::Column::WebhookId.eq(webhook_id))
                .filter(notice::Column::AlertId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await?;
        }
        for chunk in plan.dropped.chunks(CHUNK) {
            notice::Entity::delete_many()
                .filter(notice::Column::WebhookId.eq(webhook_id))
                .filter(notice::Column::AlertId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await?;
        }
        let last_sent = if queued > 0 {
            Some(now)
        } else {
            g.last_sent_at
        };
        let remaining = in_group().count(&txn).await?;
        let next = if plan.held > 0 {
            let recheck = now + route.group_interval_ms.max(RECHECK_MS);
            Some(plan.silence_ends.map_or(recheck, |s| s.min(recheck)))
        } else if remaining > 0 {
            // A reminder that found everything muted counts as made: the next is one
            // interval on, not on every pass.
            let base = if queued > 0 || reminder_due {
                Some(now)
            } else {
                last_sent
            };
            base.and_then(|t| route.repeat_at(t))
        } else if queued > 0 {
            // Nothing left to tell: ended once what was just queued is delivered.
            Some(now + RECHECK_MS)
        } else {
            None
        };
        // A group with nothing left to tell or remind of, and nothing on its way, ends, as
        // in Alertmanager: the next change of its labels starts a new one.
        if remaining == 0 && queued == 0 {
            group::Entity::delete_by_id((webhook_id, key.to_owned()))
                .exec(&txn)
                .await?;
        } else {
            group::Entity::update_many()
                .col_expr(group::Column::LastSentAt, Expr::value(last_sent))
                .col_expr(
                    group::Column::PendingSince,
                    Expr::value((plan.held > 0).then_some(g.pending_since.unwrap_or(now))),
                )
                .col_expr(group::Column::DueAt, Expr::value(next))
                .col_expr(group::Column::InFlight, Expr::value(in_flight))
                .col_expr(group::Column::Held, Expr::value(plan.held as i64))
                .filter(group::Column::WebhookId.eq(webhook_id))
                .filter(group::Column::GroupKey.eq(key))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(queued)
    }
}
