//! `rapport import`: events from a JSONL file or the CDNOW transaction log, sent in batches,
//! with a summary by verdict. Event ids are deterministic, so importing a file again only
//! finds duplicates.

use rapport_proto::ingestion::v1 as pb;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufRead;

/// Events per `Ingest` request.
pub const BATCH: usize = 1_000;

/// One line of a JSONL event file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    event_id: String,
    customer_id: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    order: Option<JsonOrder>,
    #[serde(default)]
    survey: Option<JsonSurvey>,
    #[serde(default)]
    complaint: Option<JsonComplaint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonOrder {
    order_id: String,
    amount: f64,
    currency: String,
    #[serde(default)]
    items: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSurvey {
    kind: String,
    score: i32,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonComplaint {
    complaint_id: String,
    #[serde(default)]
    category: String,
    severity: String,
    #[serde(default)]
    channel: String,
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Parses one JSONL line into a proto event; unknown enum names become unspecified values,
/// which the server rejects with the field named.
pub fn parse_line(line: &str) -> Result<pb::Event, String> {
    let e: JsonEvent = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let payload = match (e.order, e.survey, e.complaint) {
        (Some(o), None, None) => Some(pb::event::Payload::Order(pb::Order {
            order_id: o.order_id,
            amount: o.amount,
            currency: o.currency,
            items: o.items,
        })),
        (None, Some(s), None) => Some(pb::event::Payload::Survey(pb::Survey {
            kind: match s.kind.as_str() {
                "nps" => pb::SurveyKind::Nps,
                _ => pb::SurveyKind::Unspecified,
            }
            .into(),
            score: s.score,
            comment: s.comment,
        })),
        (None, None, Some(c)) => Some(pb::event::Payload::Complaint(pb::Complaint {
            complaint_id: c.complaint_id,
            category: c.category,
            severity: match c.severity.as_str() {
                "low" => pb::Severity::Low,
                "medium" => pb::Severity::Medium,
                "high" => pb::Severity::High,
                _ => pb::Severity::Unspecified,
            }
            .into(),
            channel: c.channel,
        })),
        (None, None, None) => None,
        _ => return Err("an event has exactly one of order, survey, complaint".to_owned()),
    };
    Ok(pb::Event {
        event_id: e.event_id,
        customer_id: e.customer_id,
        occurred_at: Some(timestamp(e.occurred_at)),
        sent_at: e.sent_at.map(timestamp),
        payload,
    })
}

/// Totals of an import.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Rejections by "reason field".
    pub reasons: BTreeMap<String, u64>,
    /// Lines that were not valid JSON events, with their line number and error.
    pub unreadable: Vec<(usize, String)>,
}

impl Summary {
    /// Adds a batch's answer.
    pub fn add(&mut self, response: &pb::IngestResponse) {
        self.accepted += u64::from(response.accepted);
        self.duplicates += u64::from(response.duplicates);
        self.rejected += u64::from(response.rejected);
        for r in response
            .results
            .iter()
            .filter(|r| r.verdict == pb::Verdict::Rejected as i32)
        {
            let reason = pb::RejectReason::try_from(r.reason)
                .map_or("unknown".to_owned(), |x| x.as_str_name().to_owned());
            *self
                .reasons
                .entry(format!("{reason} {}", r.field))
                .or_default() += 1;
        }
    }
}

/// The layouts `rapport import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON event per line.
    Jsonl,
    /// The CDNOW transaction log (`CDNOW_master.txt`, or `CDNOW_sample.txt` with its sample ids)
    /// as order events in USD.
    Cdnow,
}

impl Format {
    /// Parses line `number` (1-based); `Ok(None)` for a header or blank line.
    pub fn parse(self, number: usize, line: &str) -> Result<Option<pb::Event>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        match self {
            Format::Jsonl => parse_line(line).map(Some),
            Format::Cdnow => parse_cdnow_line(number, line),
        }
    }
}

/// One CDNOW transaction: `customer date cds dollars` (master) or `master sample date cds
/// dollars` (sample, keyed by the sample id as the papers' summaries are).
pub fn parse_cdnow_line(number: usize, line: &str) -> Result<Option<pb::Event>, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (customer, date, cds, dollars) = match f.as_slice() {
        [c, ..] if !c.bytes().all(|b| b.is_ascii_digit()) => return Ok(None),
        [c, d, n, v] => (*c, *d, *n, *v),
        [_, c, d, n, v] => (*c, *d, *n, *v),
        _ => return Err(format!("expected 4 or 5 columns, found {}", f.len())),
    };
    let customer: u64 = customer
        .parse()
        .map_err(|e| format!("customer id {customer:?}: {e}"))?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y%m%d")
        .map_err(|e| format!("date {date:?}: {e}"))?;
    let items: u32 = cds
        .parse()
        .map_err(|e| format!("number of CDs {cds:?}: {e}"))?;
    let amount: f64 = dollars
        .parse()
        .map_err(|e| format!("dollar value {dollars:?}: {e}"))?;
    let at = day.and_time(chrono::NaiveTime::MIN).and_utc();
    let id = format!("cdnow-{customer}-{date}-{number}");
    Ok(Some(pb::Event {
        event_id: id.clone(),
        customer_id: customer.to_string(),
        occurred_at: Some(timestamp(at)),
        sent_at: None,
        payload: Some(pb::event::Payload::Order(pb::Order {
            order_id: id,
            amount,
            currency: "USD".to_owned(),
            items,
        })),
    }))
}

/// Reads events from `reader` in `format`, in batches, calling `send` for each.
pub async fn run<R, F, Fut>(reader: R, format: Format, mut send: F) -> anyhow::Result<Summary>
where
    R: BufRead,
    F: FnMut(Vec<pb::Event>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<pb::IngestResponse>>,
{
    let mut summary = Summary::default();
    let mut batch = Vec::with_capacity(BATCH);
    for (i, line) in reader.lines().enumerate() {
        match format.parse(i + 1, &line?) {
            Ok(Some(event)) => batch.push(event),
            Ok(None) => {}
            Err(error) => summary.unreadable.push((i + 1, error)),
        }
        if batch.len() == BATCH {
            summary.add(&send(std::mem::take(&mut batch)).await?);
        }
    }
    if !batch.is_empty() {
        summary.add(&send(batch).await?);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_payload_kind_parses() {
        let order = parse_line(r#"{"event_id":"e1","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","order":{"order_id":"o","amount":5.5,"currency":"EUR"}}"#).unwrap();
        assert!(matches!(order.payload, Some(pb::event::Payload::Order(ref o)) if o.amount == 5.5));
        let nps = parse_line(r#"{"event_id":"e2","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","survey":{"kind":"nps","score":3}}"#).unwrap();
        assert!(
            matches!(nps.payload, Some(pb::event::Payload::Survey(ref s)) if s.kind == pb::SurveyKind::Nps as i32)
        );
        let complaint = parse_line(r#"{"event_id":"e3","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","complaint":{"complaint_id":"k","severity":"high"}}"#).unwrap();
        assert!(matches!(
            complaint.payload,
            Some(pb::event::Payload::Complaint(_))
        ));
    }

    #[test]
    fn cdnow_lines_become_orders() {
        assert_eq!(
            parse_cdnow_line(1, " customer_id  date number_of_cds  dollar_value").unwrap(),
            None
        );
        let master = parse_cdnow_line(2, " 00001 19970101  1   11.77")
            .unwrap()
            .unwrap();
        let sample = parse_cdnow_line(7, " 00004 0001 19970118  2   29.73")
            .unwrap()
            .unwrap();
        assert_eq!(
            (master.customer_id.as_str(), master.event_id.as_str()),
            ("1", "cdnow-1-19970101-2")
        );
        assert_eq!(
            sample.customer_id, "1",
            "sample files are keyed by the sample id"
        );
        assert!(
            matches!(sample.payload, Some(pb::event::Payload::Order(ref o)) if o.amount == 29.73 && o.items == 2)
        );
        assert!(parse_cdnow_line(3, " 00001 1997-01-01 1 2").is_err());
        assert!(parse_cdnow_line(3, " 1 2").is_err());
    }

    #[test]
    fn unreadable_lines_say_why() {
        assert!(parse_line("{").is_err());
        assert!(
            parse_line(r#"{"event_id":"e","customer_id":"c","occurred_at":"yesterday"}"#).is_err()
        );
        assert!(parse_line(r#"{"event_id":"e","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","colour":1}"#).unwrap_err().contains("colour"));
        let two = r#"{"event_id":"e","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","order":{"order_id":"o","amount":1,"currency":"EUR"},"survey":{"kind":"nps","score":1}}"#;
        assert!(parse_line(two).unwrap_err().contains("exactly one"));
    }
}
