//! `rapport`: run the whole platform locally, import events, read scores, tiers and alerts.

// The command line is a client: it reads the time of the machine it runs on.
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod out;

mod alerts;
mod backtest;
mod health;
mod import;
mod keys;
mod kpis;
mod local;
mod notify;
mod probe;
mod segments;
mod up;

use clap::{Parser, Subcommand};
use local::LocalPlatform;
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::segmentation::v1 as segmentation;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

/// Deadline of every CLI call.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "rapport",
    version,
    about = "Rapport: customer relationship health"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: Connection,
}

/// How the client commands reach the platform and print.
#[derive(Debug, clap::Args)]
struct Connection {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Where `rapport up` keeps its data and its local.toml.
    #[arg(
        long,
        global = true,
        env = "RAPPORT_DATA_DIR",
        default_value = ".rapport"
    )]
    data_dir: PathBuf,
    /// API key (default: the key of the local platform).
    #[arg(long, global = true, env = "RAPPORT_API_KEY")]
    api_key: Option<String>,
    /// Ingestion address (default: the local platform's).
    #[arg(long, global = true, env = "RAPPORT_INGESTION_ADDR")]
    ingestion: Option<String>,
    /// Scoring address (default: the local platform's).
    #[arg(long, global = true, env = "RAPPORT_SCORING_ADDR")]
    scoring: Option<String>,
    /// Segmentation address (default: the local platform's).
    #[arg(long, global = true, env = "RAPPORT_SEGMENTATION_ADDR")]
    segmentation: Option<String>,
    /// Alerting address (default: the local platform's).
    #[arg(long, global = true, env = "RAPPORT_ALERTING_ADDR")]
    alerting: Option<String>,
    #[command(flatten)]
    tls: rapport_server::tls::ClientTlsArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run all four services in this process on SQLite and an in-process cache.
    Up(up::UpArgs),
    /// Check that a server answers SERVING on `grpc.health.v1` (exit 0), for container
    /// health checks without a shell.
    Probe(probe::ProbeArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that call a running platform.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Import events from a JSONL file (one event per line).
    Import {
        /// The file; `-` reads standard input.
        file: PathBuf,
        /// Its layout.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: import::Format,
        /// CSV: which column holds each field, as FIELD=COLUMN,… (fields: customer_id,
        /// occurred_at, amount, event_id, order_id, currency, items; unmapped fields use the
        /// column of their own name). CSV rows are orders.
        #[arg(long, default_value = "")]
        map: String,
        /// CSV: the currency of rows without a currency column.
        #[arg(long)]
        currency: Option<String>,
        /// Move every event by the same whole number of days so that the file's latest
        /// falls today (yesterday, when its time of day is still to come): recorded events
        /// replayed as recent activity (for trials and demos).
        #[arg(long)]
        shift_to_today: bool,
        /// Treat the events as live: the alerts they open notify one by one, instead of as
        /// one summary of the import per webhook endpoint.
        #[arg(long)]
        live: bool,
    },
    /// Show the health of customers: score, band, trend, tier and what weighs most.
    Health {
        /// Customer ids.
        #[arg(required = true)]
        customers: Vec<String>,
        /// Show every measure's value, score and contribution, biggest losses first.
        #[arg(long)]
        explain: bool,
    },
    /// List the customers at most risk: the lowest health scores first.
    TopRisk {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only this tier.
        #[arg(long, value_parser = ["vip", "gold", "silver", "bronze", "regular"])]
        tier: Option<String>,
        /// Only this band.
        #[arg(long, value_parser = ["red", "yellow", "green"])]
        band: Option<String>,
        /// Only this lifecycle stage.
        #[arg(long, value_parser = ["prospect", "new", "active", "at_risk", "dormant", "churned", "reactivated"])]
        stage: Option<String>,
        /// Only customers whose P(alive) is below this (0-1).
        #[arg(long, value_name = "P")]
        p_alive_below: Option<f64>,
    },
    /// Print the tenant's scorecard (TOML), or replace it with a file's.
    Scorecard {
        /// A TOML scorecard to validate and put in use.
        #[arg(long)]
        set: Option<PathBuf>,
    },
    /// Re-score every customer now, with progress.
    Rescore,
    /// How customers are spread over tiers, lifecycle stages and RFM segments now.
    Tiers,
    /// Re-grade every customer now: RFM segments, value tiers and lifecycle stages.
    Segment,
    /// Custom CEL segments: list (with members), define, members.
    Segments {
        #[command(subcommand)]
        command: Option<segments::SegmentsCommand>,
    },
    /// Relationship KPIs per month or quarter (NPS, CSAT, retention, churn, repurchase,
    /// tier moves, CLV, complaints, first response), for everyone or `--by tier`.
    Kpis(kpis::KpiArgs),
    /// Fit the customer-base models (BG/NBD, Gamma-Gamma) now and re-score everyone.
    Models,
    /// List, inspect, acknowledge, snooze, resolve or watch alerts.
    Alerts {
        #[command(subcommand)]
        command: Option<alerts::AlertsCommand>,
        #[command(flatten)]
        list: alerts::ListArgs,
    },
    /// Webhook endpoints and their routes: create, list.
    Webhooks {
        #[command(subcommand)]
        command: notify::WebhooksCommand,
    },
    /// API keys managed by the platform: create, list (the default), revoke, audit.
    Keys {
        #[command(subcommand)]
        command: Option<keys::KeysCommand>,
    },
    /// Silences that mute matching alerts' notifications: add, list (the default), expire.
    Silences {
        #[command(subcommand)]
        command: Option<notify::SilencesCommand>,
    },
    /// Does the score predict an outcome? Customers scored as of a past day, against what
    /// they did after it: AUC, rates by band and decile, calibration, baselines.
    Backtest(backtest::BacktestArgs),
    /// Did interventions work? Treated versus control per action and tier.
    Effect {
        /// Only alerts opened on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
    },
}

/// Where to reach the platform, from flags, environment, or the local platform file.
struct Target {
    local: Option<LocalPlatform>,
    cli: Connection,
}

impl Target {
    fn addr(
        &self,
        flag: &Option<String>,
        pick: fn(&LocalPlatform) -> &String,
        name: &str,
    ) -> anyhow::Result<String> {
        flag.clone()
            .or_else(|| self.local.as_ref().map(|l| pick(l).clone()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no {name} address: run `rapport up` in this directory, or pass --{name}"
                )
            })
    }

    fn key(&self) -> anyhow::Result<String> {
        self.cli
            .api_key
            .clone()
            .or_else(|| self.local.as_ref().map(|l| l.api_key.clone()))
            .ok_or_else(|| anyhow::anyhow!("no API key: pass --api-key or set RAPPORT_API_KEY"))
    }

    fn channel(&self, addr: &str) -> anyhow::Result<Channel> {
        Ok(self
            .cli
            .tls
            .endpoint(addr)?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy())
    }

    /// A client of the segmentation service.
    fn alerting(
        &self,
    ) -> anyhow::Result<alerting::alerting_service_client::AlertingServiceClient<Channel>> {
        let addr = self.addr(&self.cli.alerting, |l| &l.alerting, "alerting")?;
        Ok(alerting::alerting_service_client::AlertingServiceClient::new(self.channel(&addr)?))
    }

    fn segmentation(
        &self,
    ) -> anyhow::Result<segmentation::segmentation_service_client::SegmentationServiceClient<Channel>>
    {
        let addr = self.addr(&self.cli.segmentation, |l| &l.segmentation, "segmentation")?;
        Ok(
            segmentation::segmentation_service_client::SegmentationServiceClient::new(
                self.channel(&addr)?,
            ),
        )
    }

    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(DEADLINE);
        req.metadata_mut()
            .insert("authorization", format!("Bearer {}", self.key()?).parse()?);
        Ok(req)
    }
}

/// Follows a stream of progress with a bar (`at`: a message's total and position) and
/// returns its last message.
async fn follow<T>(
    mut stream: tonic::Streaming<T>,
    at: impl Fn(&T) -> (u64, u64),
) -> anyhow::Result<Option<T>> {
    let bar = indicatif::ProgressBar::new(0);
    let mut last = None;
    while let Some(p) = stream.message().await? {
        let (total, position) = at(&p);
        bar.set_length(total);
        bar.set_position(position);
        last = Some(p);
    }
    bar.finish_and_clear();
    Ok(last)
}

/// A timestamp for people, `-` when absent.
fn when(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// The name of a tier, `-` when unspecified.
fn tier_name(t: i32) -> &'static str {
    rapport_proto::convert::domain_tier(t).map_or("-", |t| t.name())
}

/// The name of a band, `-` when unspecified.
fn band_name(b: i32) -> &'static str {
    rapport_proto::convert::domain_band(b).map_or("-", |b| b.name())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Up(args) => return up::up(args).await,
        Command::Probe(args) => return probe::probe(args, &cli.conn.tls).await,
        Command::Client(command) => command,
    };
    let target = Target {
        local: LocalPlatform::load(&cli.conn.data_dir),
        cli: cli.conn,
    };
    let json = target.cli.json;
    match &command {
        ClientCommand::Import {
            file,
            format,
            map,
            currency,
            shift_to_today,
            live,
        } => {
            let addr = target.addr(&target.cli.ingestion, |l| &l.ingestion, "ingestion")?;
            let client = ingestion::ingestion_service_client::IngestionServiceClient::new(
                target.channel(&addr)?,
            )
            .max_decoding_message_size(64 * 1024 * 1024);
            // The bar shows bytes read; it draws only on a terminal.
            let progress = if file.as_os_str() == "-" {
                indicatif::ProgressBar::new_spinner()
            } else {
                indicatif::ProgressBar::new(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0))
            };
            progress.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let input: Box<dyn std::io::Read> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(file)
                        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?,
                )
            };
            let input = progress.wrap_read(input);
            let events = match format {
                import::Format::Csv => {
                    let mapping = import::CsvMapping::parse(map, currency.clone())
                        .map_err(anyhow::Error::msg)?;
                    import::csv_rows(input, mapping).map_err(anyhow::Error::msg)?
                }
                other => import::lines(std::io::BufReader::new(input), *other),
            };
            let events = if *shift_to_today {
                import::shifted_to(events, chrono::Utc::now())
            } else {
                events
            };
            let backfill = if *live {
                String::new()
            } else {
                import::backfill_label(file)
            };
            let summary = import::run(events, |events| {
                let mut client = client.clone();
                let (target, backfill) = (&target, backfill.clone());
                // Over the tenant's rate limit, a batch waits as long as the server asks and
                // goes again (its events are idempotent): an import paces itself.
                async move {
                    let mut pushed_back = 0;
                    loop {
                        let req = target.request(ingestion::IngestRequest {
                            events: events.clone(),
                            backfill: backfill.clone(),
                        })?;
                        match client.ingest(req).await {
                            Ok(answer) => return Ok(answer.into_inner()),
                            Err(status)
                                if status.code() == tonic::Code::ResourceExhausted
                                    && pushed_back < import::MAX_PUSHBACKS =>
                            {
                                pushed_back += 1;
                                let wait = rapport_server::limits::pushback(&status)
                                    .unwrap_or(Duration::from_secs(1))
                                    .min(Duration::from_secs(30));
                                tokio::time::sleep(wait).await;
                            }
                            Err(status) => return Err(status.into()),
                        }
                    }
                }
            })
            .await?;
            progress.finish_and_clear();
            if json {
                outln!(
                    "{}",
                    json!({
                        "accepted": summary.accepted, "duplicates": summary.duplicates, "rejected": summary.rejected,
                        "rejections": summary.reasons, "unreadable_lines": summary.unreadable.iter().map(|(l, e)| json!({"line": l, "error": e})).collect::<Vec<_>>(),
                    })
                );
            } else {
                outln!(
                    "accepted {}  duplicate {}  rejected {}",
                    summary.accepted,
                    summary.duplicates,
                    summary.rejected
                );
                for (reason, n) in &summary.reasons {
                    outln!("  rejected {n:>6}  {reason}");
                }
                for (line, error) in &summary.unreadable {
                    outln!("  line {line}: {error}");
                }
            }
        }
        ClientCommand::Health { customers, explain } => {
            let addr = target.addr(&target.cli.scoring, |l| &l.scoring, "scoring")?;
            let client =
                scoring::scoring_service_client::ScoringServiceClient::new(target.channel(&addr)?);
            health::show(&target, client, customers, *explain, json).await?;
        }
        ClientCommand::TopRisk {
            limit,
            tier,
            band,
            stage,
            p_alive_below,
        } => {
            let addr = target.addr(&target.cli.scoring, |l| &l.scoring, "scoring")?;
            let client =
                scoring::scoring_service_client::ScoringServiceClient::new(target.channel(&addr)?);
            let filter = health::RiskFilter {
                limit: *limit,
                tier: tier.as_deref(),
                band: band.as_deref(),
                stage: stage.as_deref(),
                p_alive_below: *p_alive_below,
            };
            health::top_risk(&target, client, &filter, json).await?;
        }
        ClientCommand::Scorecard { set } => {
            let addr = target.addr(&target.cli.scoring, |l| &l.scoring, "scoring")?;
            let client =
                scoring::scoring_service_client::ScoringServiceClient::new(target.channel(&addr)?);
            health::scorecard(&target, client, set.as_deref(), json).await?;
        }
        ClientCommand::Rescore => {
            let addr = target.addr(&target.cli.scoring, |l| &l.scoring, "scoring")?;
            let client =
                scoring::scoring_service_client::ScoringServiceClient::new(target.channel(&addr)?);
            health::rescore(&target, client, json).await?;
        }
        ClientCommand::Models => {
            let addr = target.addr(&target.cli.scoring, |l| &l.scoring, "scoring")?;
            let mut client =
                scoring::scoring_service_client::ScoringServiceClient::new(target.channel(&addr)?);
            let fit = client
                .fit_models(target.request(scoring::FitModelsRequest {
                    observation_end: None,
                })?)
                .await?
                .into_inner();
            let fits = [
                fit.bgnbd.unwrap_or_default(),
                fit.gamma_gamma.unwrap_or_default(),
            ];
            if json {
                let out: Vec<_> = fits
                    .iter()
                    .map(|f| json!({"model": f.model, "params": f.params, "log_likelihood": f.log_likelihood, "iterations": f.iterations, "converged": f.converged, "customers": f.customers, "error": f.error}))
                    .collect();
                outln!(
                    "{}",
                    json!({"fits": out, "customers_rescored": fit.customers_rescored})
                );
            } else {
                for f in &fits {
                    if f.error.is_empty() {
                        let params: Vec<String> = f
                            .params
                            .iter()
                            .map(|(k, v)| format!("{k}={v:.4}"))
                            .collect();
                        outln!(
                            "{:<12} {}  LL {:.2}  {} customers, {} iterations{}",
                            f.model,
                            params.join(" "),
                            f.log_likelihood,
                            f.customers,
                            f.iterations,
                            if f.converged { "" } else { " (not converged)" }
                        );
                    } else {
                        outln!("{:<12} not fitted: {}", f.model, f.error);
                    }
                }
                outln!("re-scored {} customers", fit.customers_rescored);
            }
        }
        ClientCommand::Segments { command } => {
            let client = target.segmentation()?;
            let command = command.clone().unwrap_or(segments::SegmentsCommand::List);
            segments::run(&target, client, command, json).await?;
        }
        ClientCommand::Segment | ClientCommand::Tiers => {
            let mut client = target.segmentation()?;
            let (headline, changes, tiers, stages, rfm) = if matches!(command, ClientCommand::Tiers)
            {
                let d = client
                    .get_distribution(target.request(segmentation::GetDistributionRequest {})?)
                    .await?
                    .into_inner();
                (
                    format!("{} customers", d.customers),
                    None,
                    d.tiers,
                    d.stages,
                    d.rfm_segments,
                )
            } else {
                let run = segments::run_segmentation(&target, client).await?;
                (
                    format!(
                        "graded {} customers: {} changed tier, {} changed stage",
                        run.customers, run.tier_changes, run.stage_changes
                    ),
                    Some((run.tier_changes, run.stage_changes)),
                    run.tiers,
                    run.stages,
                    run.rfm_segments,
                )
            };
            if json {
                let named = |counts: &[segmentation::SegmentCount]| {
                    counts
                        .iter()
                        .map(|s| (s.segment.clone(), json!(s.customers)))
                        .collect::<serde_json::Map<_, _>>()
                };
                let tiers: serde_json::Map<_, _> = tiers
                    .iter()
                    .map(|t| (tier_name(t.tier).to_owned(), json!(t.customers)))
                    .collect();
                let mut out =
                    json!({"tiers": tiers, "stages": named(&stages), "rfm_segments": named(&rfm)});
                if let Some((tier_changes, stage_changes)) = changes {
                    out["tier_changes"] = json!(tier_changes);
                    out["stage_changes"] = json!(stage_changes);
                }
                outln!("{out}");
            } else {
                outln!("{headline}");
                outln!("tiers");
                for t in &tiers {
                    outln!("  {:<18} {:>8}", tier_name(t.tier), t.customers);
                }
                for (title, counts) in [("stages", &stages), ("RFM segments", &rfm)] {
                    outln!("{title}");
                    for s in counts {
                        outln!("  {:<18} {:>8}", s.segment, s.customers);
                    }
                }
            }
        }
        ClientCommand::Alerts { command, list } => {
            let client = target.alerting()?;
            let command = command
                .clone()
                .unwrap_or(alerts::AlertsCommand::List(list.clone()));
            alerts::run(&target, client, command, json).await?;
        }
        ClientCommand::Webhooks { command } => {
            let client = target.alerting()?;
            notify::webhooks(&target, client, command.clone(), json).await?;
        }
        ClientCommand::Backtest(args) => {
            let addr = target.addr(&target.cli.scoring, |l| &l.scoring, "scoring")?;
            let client =
                scoring::scoring_service_client::ScoringServiceClient::new(target.channel(&addr)?)
                    .max_decoding_message_size(256 * 1024 * 1024);
            backtest::backtest(&target, client, args.clone(), json).await?;
        }
        ClientCommand::Keys { command } => {
            let addr = target.addr(&target.cli.ingestion, |l| &l.ingestion, "ingestion")?;
            let client = rapport_proto::keys::v1::key_service_client::KeyServiceClient::new(
                target.channel(&addr)?,
            );
            let command = command.clone().unwrap_or(keys::KeysCommand::List {
                all: false,
                tenant: String::new(),
            });
            keys::keys(&target, client, command, json).await?;
        }
        ClientCommand::Silences { command } => {
            let client = target.alerting()?;
            let command = command.clone().unwrap_or(notify::SilencesCommand::List);
            notify::silences(&target, client, command, json).await?;
        }
        ClientCommand::Kpis(args) => {
            let client = target.segmentation()?;
            kpis::run(&target, client, args, json).await?;
        }
        ClientCommand::Effect { since } => {
            let client = target.alerting()?;
            alerts::effect(&target, client, *since, json).await?;
        }
    }
    Ok(())
}
