//! `rapport alerts` (list, show, ack, snooze, resolve, watch) and `rapport effect`.

use crate::{Target, tier_name, when};
use rapport_proto::alerting::v1 as pb;
use rapport_proto::convert;
use serde_json::json;
use tonic::transport::Channel;

type Client = pb::alerting_service_client::AlertingServiceClient<Channel>;

/// What to do with alerts.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first (the default).
    List(ListArgs),
    /// One alert with its recommendations and audit trail.
    Show { id: String },
    /// Acknowledge a standing alert.
    Ack {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Snooze a standing alert (at most 7 days).
    Snooze {
        id: String,
        /// How long, e.g. 30m, 4h, 2d.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: chrono::Duration,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resolve a standing alert by hand.
    Resolve {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Follow alert changes as they happen (resumable with --after).
    Watch {
        /// Start after this revision (0: from the oldest kept).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Filters of `rapport alerts list`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Only alerts in this state.
    #[arg(long, value_parser = ["open", "acknowledged", "snoozed", "resolved"])]
    pub state: Option<String>,
    /// Only alerts of this customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only alerts of this rule (health_below, score_drop, tier_downgrade, detractor,
    /// complaint_spike, p_alive_drop, first_response_sla).
    #[arg(long)]
    pub rule: Option<String>,
    /// Highest priority first (severity × tier × how fast the score fell), or newest first.
    #[arg(long, value_parser = ["priority", "newest"], default_value = "priority")]
    pub sort: String,
    /// How many alerts to show; when more pass the filters, their counts per rule, tier and
    /// severity come first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Parses `30m`, `4h`, `2d` (or plain seconds).
pub(crate) fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with s, m, h, d or w"))?;
    match unit {
        "" | "s" => Ok(chrono::Duration::seconds(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "d" => Ok(chrono::Duration::days(n)),
        "w" => Ok(chrono::Duration::weeks(n)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d or w)")),
    }
}

fn state_name(s: i32) -> &'static str {
    match pb::AlertState::try_from(s) {
        Ok(pb::AlertState::Open) => "open",
        Ok(pb::AlertState::Acknowledged) => "acknowledged",
        Ok(pb::AlertState::Snoozed) => "snoozed",
        Ok(pb::AlertState::Resolved) => "resolved",
        _ => "-",
    }
}

fn severity_name(s: i32) -> &'static str {
    match pb::Severity::try_from(s) {
        Ok(pb::Severity::Info) => "info",
        Ok(pb::Severity::Warning) => "warning",
        Ok(pb::Severity::Error) => "error",
        Ok(pb::Severity::Critical) => "critical",
        _ => "-",
    }
}

fn alert_json(a: &pb::Alert) -> serde_json::Value {
    json!({
        "id": a.id,
        "rule": a.rule,
        "customer_id": a.customer_id,
        "discriminator": a.discriminator,
        "state": state_name(a.state),
        "severity": severity_name(a.severity),
        "priority": a.priority,
        "score": a.score,
        "tier": tier_name(a.tier),
        "trigger_count": a.trigger_count,
        "evidence": a.evidence,
        "opened_at": when(a.opened_at.as_ref()),
        "resolved_at": a.resolved_at.as_ref().map(|t| when(Some(t))),
        "snoozed_until": a.snoozed_until.as_ref().map(|t| when(Some(t))),
        "holdout": a.holdout,
        "recommendations": a.recommendations.iter().map(|r| json!({"action": r.action, "description": r.description})).collect::<Vec<_>>(),
    })
}

fn print_row(a: &pb::Alert) {
    outln!(
        "{:<6} {:>5.1} {:<18} {:<20} {:<12} {:<8} {:>6.1} {:<8} {:>3} {}",
        a.id,
        a.priority,
        a.rule,
        a.customer_id,
        state_name(a.state),
        severity_name(a.severity),
        a.score,
        tier_name(a.tier),
        a.trigger_count,
        when(a.opened_at.as_ref())
    );
}

fn print_header() {
    outln!(
        "{:<6} {:>5} {:<18} {:<20} {:<12} {:<8} {:>6} {:<8} {:>3} OPENED",
        "ID",
        "PRIO",
        "RULE",
        "CUSTOMER",
        "STATE",
        "SEVERITY",
        "SCORE",
        "TIER",
        "N"
    );
}

/// A large queue at a glance: how many alerts per rule, tier and severity (the largest
/// groups first, at most 20 lines).
fn print_counts(counts: &[pb::AlertCount], total: u64) {
    outln!("{total} alerts; by rule, tier and severity:");
    outln!("{:>8}  {:<18} {:<8} SEVERITY", "COUNT", "RULE", "TIER");
    for c in counts.iter().take(20) {
        outln!(
            "{:>8}  {:<18} {:<8} {}",
            c.count,
            c.rule,
            tier_name(c.tier),
            severity_name(c.severity)
        );
    }
    if counts.len() > 20 {
        let rest: u64 = counts.iter().skip(20).map(|c| c.count).sum();
        outln!("{rest:>8}  in {} smaller groups", counts.len() - 20);
    }
}

/// Runs one `rapport alerts` command.
pub async fn run(
    target: &Target,
    mut client: Client,
    command: AlertsCommand,
    json: bool,
) -> anyhow::Result<()> {
    let print = |a: &pb::Alert| {
        if json {
            outln!("{}", alert_json(a));
        } else {
            print_header();
            print_row(a);
        }
    };
    match command {
        AlertsCommand::List(args) => {
            let state = match args.state.as_deref() {
                Some("open") => pb::AlertState::Open,
                Some("acknowledged") => pb::AlertState::Acknowledged,
                Some("snoozed") => pb::AlertState::Snoozed,
                Some("resolved") => pb::AlertState::Resolved,
                _ => pb::AlertState::Unspecified,
            };
            let answer = client
                .list_alerts(
                    target.request(pb::ListAlertsRequest {
                        state: state.into(),
                        customer_id: args.customer.unwrap_or_default(),
                        rule: args.rule.unwrap_or_default(),
                        order: if args.sort == "newest" {
                            pb::AlertOrder::Newest
                        } else {
                            pb::AlertOrder::Priority
                        }
                        .into(),
                        limit: if args.limit == 0 { 50 } else { args.limit },
                        with_counts: true,
                    })?,
                )
                .await?
                .into_inner();
            let alerts = answer.alerts;
            if json {
                let out: Vec<_> = alerts.iter().map(alert_json).collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                if answer.total > alerts.len() as u64 {
                    print_counts(&answer.counts, answer.total);
                    outln!();
                    outln!("the first {} by {}:", alerts.len(), args.sort);
                }
                print_header();
                alerts.iter().for_each(print_row);
            }
        }
        AlertsCommand::Show { id } => {
            let r = client
                .get_alert(target.request(pb::GetAlertRequest { id })?)
                .await?
                .into_inner();
            let a = r.alert.unwrap_or_default();
            if json {
                let mut out = alert_json(&a);
                out["transitions"] = r
                    .transitions
                    .iter()
                    .map(|t| json!({"from": t.from_state, "to": t.to_state, "actor": t.actor, "reason": t.reason, "at": when(t.at.as_ref()), "config_version": t.config_version}))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            print_header();
            print_row(&a);
            outln!("\nevidence: {}", a.evidence);
            if a.holdout {
                outln!("control group: no recommendation");
            }
            for r in &a.recommendations {
                outln!("recommended: {:<22} {}", r.action, r.description);
            }
            outln!();
            for t in &r.transitions {
                let from = if t.from_state.is_empty() {
                    "-"
                } else {
                    &t.from_state
                };
                outln!(
                    "{}  {:>12} → {:<12} {:<10} {}",
                    when(t.at.as_ref()),
                    from,
                    t.to_state,
                    t.actor,
                    t.reason
                );
            }
        }
        AlertsCommand::Ack { id, reason } => {
            let request = target.request(pb::AlertActionRequest {
                id,
                actor: String::new(),
                reason,
            })?;
            print(&client.acknowledge_alert(request).await?.into_inner());
        }
        AlertsCommand::Snooze {
            id,
            duration,
            reason,
        } => {
            let until = chrono::Utc::now() + duration;
            let a = client
                .snooze_alert(target.request(pb::SnoozeAlertRequest {
                    id,
                    actor: String::new(),
                    reason,
                    until: Some(convert::timestamp(until.timestamp_millis())),
                })?)
                .await?
                .into_inner();
            print(&a);
        }
        AlertsCommand::Resolve { id, reason } => {
            let request = target.request(pb::AlertActionRequest {
                id,
                actor: String::new(),
                reason,
            })?;
            print(&client.resolve_alert(request).await?.into_inner());
        }
        AlertsCommand::Watch { after } => {
            let mut req = target.request(pb::WatchAlertsRequest {
                after_revision: after,
            })?;
            // A watch lasts as long as the user wants it to.
            req.metadata_mut().remove("grpc-timeout");
            let mut stream = client.watch_alerts(req).await?.into_inner();
            while let Some(m) = stream.message().await? {
                if m.bookmark {
                    continue;
                }
                let a = m.alert.unwrap_or_default();
                let change = pb::ChangeKind::try_from(m.change).map_or("-".to_owned(), |c| {
                    c.as_str_name()
                        .trim_start_matches("CHANGE_KIND_")
                        .to_lowercase()
                });
                if json {
                    outln!(
                        "{}",
                        json!({"revision": m.revision, "change": change, "actor": m.actor, "reason": m.reason, "alert": alert_json(&a)})
                    );
                } else {
                    outln!(
                        "#{:<6} {:<12} {:<6} {:<18} {:<20} {:<8} {}",
                        m.revision,
                        change,
                        a.id,
                        a.rule,
                        a.customer_id,
                        severity_name(a.severity),
                        m.reason
                    );
                }
            }
        }
    }
    Ok(())
}

/// `rapport effect`: treated versus control per action and tier.
pub async fn effect(
    target: &Target,
    mut client: Client,
    since: Option<chrono::NaiveDate>,
    json: bool,
) -> anyhow::Result<()> {
    let since = since
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| convert::timestamp(t.and_utc().timestamp_millis()));
    let r = client
        .effect_report(target.request(pb::EffectReportRequest { since })?)
        .await?
        .into_inner();
    let est = |e: &Option<pb::Estimate>| {
        e.as_ref().map(|e| json!({"treated": e.treated, "control": e.control, "difference": e.difference, "low": e.low, "high": e.high, "significant": e.significant}))
    };
    if json {
        let rows: Vec<_> = r
            .rows
            .iter()
            .map(|row| json!({"action": row.action, "tier": row.tier, "treated": row.treated, "control": row.control, "health": est(&row.health), "retention": est(&row.retention), "spend": est(&row.spend), "cost": row.cost, "roi": row.roi}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"window_days": r.window_days, "rows": rows}))?
        );
        return Ok(());
    }
    outln!(
        "outcomes over the {} days after each alert opened; treated − control, 95 % interval",
        r.window_days
    );
    let cell = |e: &Option<pb::Estimate>, scale: f64| match e {
        Some(e) => format!(
            "{:+.1} [{:+.1}, {:+.1}]{}",
            e.difference * scale,
            e.low * scale,
            e.high * scale,
            if e.significant { "*" } else { "" }
        ),
        None => "-".to_owned(),
    };
    outln!(
        "{:<22} {:<8} {:>7} {:>7}  {:<26} {:<26} {:<26} {:>8}",
        "ACTION",
        "TIER",
        "TREATED",
        "CONTROL",
        "HEALTH (points)",
        "RETENTION (pp)",
        "SPEND",
        "ROI"
    );
    for row in &r.rows {
        outln!(
            "{:<22} {:<8} {:>7} {:>7}  {:<26} {:<26} {:<26} {:>8}",
            row.action,
            row.tier,
            row.treated,
            row.control,
            cell(&row.health, 1.0),
            cell(&row.retention, 100.0),
            cell(&row.spend, 1.0),
            row.roi.map_or("-".to_owned(), |r| format!("{r:.2}"))
        );
    }
    Ok(())
}
