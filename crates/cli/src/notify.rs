//! `rapport webhooks` (endpoints with their routes) and `rapport silences` (add, list,
//! expire): who hears of alerts, and what is muted.

use crate::alerts::parse_duration;
use crate::{Target, when};
use rapport_proto::alerting::v1 as pb;
use serde_json::json;
use tonic::transport::Channel;

type Client = pb::alerting_service_client::AlertingServiceClient<Channel>;

/// Which alerts: every flag given must hold the alert's value; each takes a comma list.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MatcherArgs {
    /// Rules (health_below, score_drop, tier_downgrade, detractor, complaint_spike,
    /// p_alive_drop, first_response_sla).
    #[arg(long = "rule", value_delimiter = ',')]
    pub rules: Vec<String>,
    /// Severities (info, warning, error, critical).
    #[arg(long = "severity", value_delimiter = ',')]
    pub severities: Vec<String>,
    /// Tiers (vip, gold, silver, bronze, regular).
    #[arg(long = "tier", value_delimiter = ',')]
    pub tiers: Vec<String>,
    /// Lifecycle stages.
    #[arg(long = "stage", value_delimiter = ',')]
    pub stages: Vec<String>,
    /// Customer ids.
    #[arg(long = "customer", value_delimiter = ',')]
    pub customers: Vec<String>,
}

impl MatcherArgs {
    fn matcher(self) -> pb::AlertMatcher {
        pb::AlertMatcher {
            rules: self.rules,
            severities: self.severities,
            tiers: self.tiers,
            stages: self.stages,
            customer_ids: self.customers,
        }
    }
}

/// What to do with webhook endpoints.
// Parsed once per process: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint with its route; prints its signing secret (shown once).
    Create {
        /// The http:// URL that receives the signed POSTs.
        url: String,
        #[command(flatten)]
        matcher: MatcherArgs,
        /// Labels whose equal values travel together (rule, severity, tier, stage,
        /// customer); `none` for one group. Default: rule,severity.
        #[arg(long, value_delimiter = ',')]
        group_by: Vec<String>,
        /// How long a new group collects changes (default 30s).
        #[arg(long, value_parser = parse_duration)]
        group_wait: Option<chrono::Duration>,
        /// Least time between two deliveries of a group (default 5m).
        #[arg(long, value_parser = parse_duration)]
        group_interval: Option<chrono::Duration>,
        /// Reminder of what still stands after this long (default 4h; 0 never).
        #[arg(long, value_parser = parse_duration)]
        repeat_interval: Option<chrono::Duration>,
        /// An import's one summary goes out once it opened no alert for this long
        /// (default 60s).
        #[arg(long, value_parser = parse_duration)]
        backfill_wait: Option<chrono::Duration>,
    },
    /// The endpoints with their routes.
    List,
}

/// What to do with silences.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SilencesCommand {
    /// Mute matching alerts' notifications for a while (the alerts still open).
    Add {
        #[command(flatten)]
        matcher: MatcherArgs,
        /// How long, e.g. 2h, 3d.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: chrono::Duration,
        /// Why (a known incident, a migration...).
        #[arg(long)]
        reason: String,
        /// Who (defaults to the API key's name).
        #[arg(long, default_value = "")]
        author: String,
    },
    /// Silences in force or to come, then those ended in the last 30 days (the default).
    List,
    /// End a silence now.
    Expire { id: String },
}

fn duration(d: chrono::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: d.subsec_nanos(),
    }
}

fn list(values: &[String]) -> String {
    if values.is_empty() {
        "*".to_owned()
    } else {
        values.join(",")
    }
}

fn matcher_text(m: &Option<pb::AlertMatcher>) -> String {
    let m = m.clone().unwrap_or_default();
    let parts: Vec<String> = [
        ("rule", &m.rules),
        ("severity", &m.severities),
        ("tier", &m.tiers),
        ("stage", &m.stages),
        ("customer", &m.customer_ids),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={}", list(v)))
    .collect();
    if parts.is_empty() {
        "every alert".to_owned()
    } else {
        parts.join(" ")
    }
}

fn seconds(d: &Option<prost_types::Duration>) -> i64 {
    d.as_ref().map_or(0, |d| d.seconds)
}

fn webhook_json(w: &pb::Webhook) -> serde_json::Value {
    let r = w.route.clone().unwrap_or_default();
    json!({
        "id": w.id,
        "url": w.url,
        "enabled": w.enabled,
        "disabled_reason": w.disabled_reason,
        "matcher": matcher_text(&r.matcher),
        "group_by": r.group_by,
        "group_wait_secs": seconds(&r.group_wait),
        "group_interval_secs": seconds(&r.group_interval),
        "repeat_interval_secs": seconds(&r.repeat_interval),
    })
}

fn print_webhook(w: &pb::Webhook) {
    let r = w.route.clone().unwrap_or_default();
    outln!(
        "{:<4} {:<8} {:<40} {:<28} by {:<16} wait {}s interval {}s repeat {}s",
        w.id,
        if w.enabled { "enabled" } else { "disabled" },
        w.url,
        matcher_text(&r.matcher),
        if r.group_by.is_empty() {
            "-".to_owned()
        } else {
            r.group_by.join(",")
        },
        seconds(&r.group_wait),
        seconds(&r.group_interval),
        seconds(&r.repeat_interval),
    );
}

/// Runs one `rapport webhooks` command.
pub async fn webhooks(
    target: &Target,
    mut client: Client,
    command: WebhooksCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Create {
            url,
            matcher,
            group_by,
            group_wait,
            group_interval,
            repeat_interval,
            backfill_wait,
        } => {
            let nothing = group_by.iter().any(|g| g == "none");
            let route = pb::WebhookRoute {
                matcher: Some(matcher.matcher()),
                group_by_nothing: nothing,
                group_by: if nothing { Vec::new() } else { group_by },
                group_wait: group_wait.map(duration),
                group_interval: group_interval.map(duration),
                repeat_interval: repeat_interval.map(duration),
                backfill_wait: backfill_wait.map(duration),
                ..Default::default()
            };
            let w = client
                .create_webhook(target.request(pb::CreateWebhookRequest {
                    url,
                    route: Some(route),
                })?)
                .await?
                .into_inner();
            if json {
                let mut out = webhook_json(&w);
                out["secret"] = w.secret.clone().into();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_webhook(&w);
                outln!("signing secret (shown once): {}", w.secret);
            }
        }
        WebhooksCommand::List => {
            let hooks = client
                .list_webhooks(target.request(pb::ListWebhooksRequest {})?)
                .await?
                .into_inner()
                .webhooks;
            if json {
                let out: Vec<_> = hooks.iter().map(webhook_json).collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                hooks.iter().for_each(print_webhook);
            }
        }
    }
    Ok(())
}

fn silence_json(s: &pb::Silence) -> serde_json::Value {
    json!({
        "id": s.id,
        "state": s.state,
        "matcher": matcher_text(&s.matcher),
        "author": s.author,
        "reason": s.reason,
        "starts_at": when(s.starts_at.as_ref()),
        "ends_at": when(s.ends_at.as_ref()),
        "expired_by": s.expired_by,
    })
}

fn print_silence(s: &pb::Silence) {
    outln!(
        "{:<4} {:<8} {:<19} {:<19} {:<16} {:<28} {}",
        s.id,
        s.state,
        when(s.starts_at.as_ref()),
        when(s.ends_at.as_ref()),
        s.author,
        matcher_text(&s.matcher),
        s.reason
    );
}

fn print_silence_header() {
    outln!(
        "{:<4} {:<8} {:<19} {:<19} {:<16} {:<28} REASON",
        "ID",
        "STATE",
        "STARTS",
        "ENDS",
        "AUTHOR",
        "MATCHER"
    );
}

/// Runs one `rapport silences` command.
pub async fn silences(
    target: &Target,
    mut client: Client,
    command: SilencesCommand,
    json: bool,
) -> anyhow::Result<()> {
    let one = |s: pb::Silence| -> anyhow::Result<()> {
        if json {
            outln!("{}", serde_json::to_string_pretty(&silence_json(&s))?);
        } else {
            print_silence_header();
            print_silence(&s);
        }
        Ok(())
    };
    match command {
        SilencesCommand::Add {
            matcher,
            duration: d,
            reason,
            author,
        } => {
            let s = client
                .create_silence(target.request(pb::CreateSilenceRequest {
                    matcher: Some(matcher.matcher()),
                    author,
                    reason,
                    duration: Some(duration(d)),
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            one(s)?;
        }
        SilencesCommand::List => {
            let list = client
                .list_silences(target.request(pb::ListSilencesRequest {})?)
                .await?
                .into_inner()
                .silences;
            if json {
                let out: Vec<_> = list.iter().map(silence_json).collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_silence_header();
                list.iter().for_each(print_silence);
            }
        }
        SilencesCommand::Expire { id } => {
            let s = client
                .expire_silence(target.request(pb::ExpireSilenceRequest {
                    id,
                    actor: String::new(),
                })?)
                .await?
                .into_inner();
            one(s)?;
        }
    }
    Ok(())
}
