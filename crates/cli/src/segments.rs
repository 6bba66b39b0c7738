//! `rapport segment`'s run, and `rapport segments`: custom CEL segments — define, list with
//! member counts, list members.

use crate::Target;
use rapport_proto::segmentation::v1 as pb;
use serde_json::json;
use tonic::transport::Channel;

type Client = pb::segmentation_service_client::SegmentationServiceClient<Channel>;

/// What to do with custom segments.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SegmentsCommand {
    /// The custom segments with their members as of the latest run (the default).
    List,
    /// Define or replace a segment; members are evaluated by the next `rapport segment`.
    Define {
        name: String,
        /// A CEL expression, e.g. 'tier in ["vip", "gold"] && score < 50.0'.
        expression: String,
    },
    /// The customers of a custom segment, or with --rfm of an RFM segment, one per line.
    Members {
        #[arg(required_unless_present = "rfm")]
        name: Option<String>,
        /// An RFM segment's name (e.g. "Champions") instead of a custom segment.
        #[arg(long, conflicts_with = "name")]
        rfm: Option<String>,
    },
}

/// `rapport segment`: runs segmentation, showing its progress; returns the run's summary.
pub async fn run_segmentation(
    target: &Target,
    mut client: Client,
) -> anyhow::Result<pb::SegmentationSummary> {
    let stream = client
        .run_segmentation(target.request(pb::RunSegmentationRequest { as_of: None })?)
        .await?
        .into_inner();
    crate::follow(stream, |p| (p.customers_read, p.customers_graded))
        .await?
        .and_then(|last| last.summary)
        .ok_or_else(|| anyhow::anyhow!("the run ended without its summary"))
}

/// Runs one `rapport segments` command.
pub async fn run(
    target: &Target,
    mut client: Client,
    command: SegmentsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        SegmentsCommand::List => {
            let segments = client
                .list_custom_segments(target.request(pb::ListCustomSegmentsRequest {})?)
                .await?
                .into_inner()
                .segments;
            if json {
                let out: Vec<_> = segments
                    .iter()
                    .map(|s| json!({"name": s.name, "expression": s.expression, "members": s.members}))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                outln!("{:<24} {:>8}  EXPRESSION", "SEGMENT", "MEMBERS");
                for s in &segments {
                    outln!("{:<24} {:>8}  {}", s.name, s.members, s.expression);
                }
            }
        }
        SegmentsCommand::Define { name, expression } => {
            let s = client
                .define_segment(target.request(pb::DefineSegmentRequest { name, expression })?)
                .await?
                .into_inner();
            if json {
                outln!("{}", json!({"name": s.name, "expression": s.expression}));
            } else {
                outln!("defined {}; `rapport segment` evaluates it", s.name);
            }
        }
        SegmentsCommand::Members { name, rfm } => {
            let mut after = String::new();
            let mut all = Vec::new();
            loop {
                let page = client
                    .list_segment_members(target.request(pb::ListSegmentMembersRequest {
                        name: name.clone().unwrap_or_default(),
                        rfm_segment: rfm.clone().unwrap_or_default(),
                        after_customer_id: after,
                        ..Default::default()
                    })?)
                    .await?
                    .into_inner();
                all.extend(page.customer_ids);
                if page.next_after_customer_id.is_empty() {
                    break;
                }
                after = page.next_after_customer_id;
            }
            if json {
                let name = name.as_ref().or(rfm.as_ref());
                outln!("{}", json!({"name": name, "members": all}));
            } else {
                all.iter().for_each(|id| outln!("{id}"));
            }
        }
    }
    Ok(())
}
