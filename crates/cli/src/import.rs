//! `rapport import`: events from a JSONL file or the CDNOW transaction log, sent in batches,
//! with a summary by verdict. Event ids are deterministic, so importing a file again only
//! finds duplicates.

use chrono::{DateTime, Utc};
use rapport_proto::ingestion::v1 as pb;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufRead;

/// Events per `Ingest` request.
pub const BATCH: usize = 1_000;

/// One line of a JSONL event file: the envelope and exactly one payload, named as in the
/// proto (`order`, `refund`, `survey`, `complaint`, `support_ticket`, `engagement`,
/// `subscription`, `payment`, `profile`); enumerations by their short lowercase name
/// (`"nps"`, `"first_response"`, `"upgrade"`…).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    event_id: String,
    customer_id: String,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    sent_at: Option<DateTime<Utc>>,
    #[serde(default)]
    order: Option<JsonOrder>,
    #[serde(default)]
    refund: Option<JsonRefund>,
    #[serde(default)]
    survey: Option<JsonSurvey>,
    #[serde(default)]
    complaint: Option<JsonComplaint>,
    #[serde(default)]
    support_ticket: Option<JsonTicket>,
    #[serde(default)]
    engagement: Option<JsonEngagement>,
    #[serde(default)]
    subscription: Option<JsonSubscription>,
    #[serde(default)]
    payment: Option<JsonPayment>,
    #[serde(default)]
    profile: Option<JsonProfile>,
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
struct JsonRefund {
    order_id: String,
    amount: f64,
    currency: String,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTicket {
    ticket_id: String,
    status: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    priority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEngagement {
    kind: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    count: u32,
    #[serde(default)]
    subject: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubscription {
    plan: String,
    change: String,
    #[serde(default)]
    seats: u32,
    #[serde(default)]
    mrr: f64,
    #[serde(default)]
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPayment {
    invoice_id: String,
    due_at: DateTime<Utc>,
    #[serde(default)]
    paid_at: Option<DateTime<Utc>>,
    amount: f64,
    currency: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct JsonProfile {
    region: String,
    industry: String,
    acquisition_channel: String,
    acquisition_cost: Option<f64>,
    currency: String,
    owner: String,
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// The value of a proto enumeration from its short name (`"nps"` → `SURVEY_KIND_NPS`);
/// unknown names become 0 (unspecified), which the server rejects naming the field.
fn enum_value(prefix: &str, name: &str, from_str_name: fn(&str) -> Option<i32>) -> i32 {
    from_str_name(&format!("{prefix}_{}", name.to_ascii_uppercase())).unwrap_or(0)
}

/// Parses one JSONL line into a proto event.
pub fn parse_line(line: &str) -> Result<pb::Event, String> {
    use pb::event::Payload as P;
    let e: JsonEvent = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mut payloads: Vec<P> = Vec::new();
    if let Some(o) = e.order {
        payloads.push(P::Order(pb::Order {
            order_id: o.order_id,
            amount: o.amount,
            currency: o.currency,
            items: o.items,
        }));
    }
    if let Some(r) = e.refund {
        payloads.push(P::Refund(pb::Refund {
            order_id: r.order_id,
            amount: r.amount,
            currency: r.currency,
        }));
    }
    if let Some(s) = e.survey {
        let kind = enum_value("SURVEY_KIND", &s.kind, |n| {
            pb::SurveyKind::from_str_name(n).map(Into::into)
        });
        payloads.push(P::Survey(pb::Survey {
            kind,
            score: s.score,
            comment: s.comment,
        }));
    }
    if let Some(c) = e.complaint {
        let severity = enum_value("SEVERITY", &c.severity, |n| {
            pb::Severity::from_str_name(n).map(Into::into)
        });
        payloads.push(P::Complaint(pb::Complaint {
            complaint_id: c.complaint_id,
            category: c.category,
            severity,
            channel: c.channel,
        }));
    }
    if let Some(t) = e.support_ticket {
        payloads.push(P::SupportTicket(pb::SupportTicket {
            ticket_id: t.ticket_id,
            status: enum_value("TICKET_STATUS", &t.status, |n| {
                pb::TicketStatus::from_str_name(n).map(Into::into)
            }),
            channel: t.channel,
            priority: t.priority.map_or(0, |p| {
                enum_value("PRIORITY", &p, |n| {
                    pb::Priority::from_str_name(n).map(Into::into)
                })
            }),
        }));
    }
    if let Some(g) = e.engagement {
        let kind = enum_value("ENGAGEMENT_KIND", &g.kind, |n| {
            pb::EngagementKind::from_str_name(n).map(Into::into)
        });
        payloads.push(P::Engagement(pb::Engagement {
            kind,
            channel: g.channel,
            count: g.count,
            subject: g.subject,
        }));
    }
    if let Some(s) = e.subscription {
        let change = enum_value("SUBSCRIPTION_CHANGE", &s.change, |n| {
            pb::SubscriptionChange::from_str_name(n).map(Into::into)
        });
        payloads.push(P::Subscription(pb::Subscription {
            plan: s.plan,
            change,
            seats: s.seats,
            mrr: s.mrr,
            currency: s.currency,
        }));
    }
    if let Some(p) = e.payment {
        payloads.push(P::Payment(pb::Payment {
            invoice_id: p.invoice_id,
            due_at: Some(timestamp(p.due_at)),
            paid_at: p.paid_at.map(timestamp),
            amount: p.amount,
            currency: p.currency,
        }));
    }
    if let Some(p) = e.profile {
        payloads.push(P::Profile(pb::Profile {
            region: p.region,
            industry: p.industry,
            acquisition_channel: p.acquisition_channel,
            acquisition_cost: p.acquisition_cost,
            currency: p.currency,
            owner: p.owner,
        }));
    }
    if payloads.len() > 1 {
        return Err("an event has exactly one payload (order, refund, survey, complaint, support_ticket, engagement, subscription, payment or profile)".to_owned());
    }
    Ok(pb::Event {
        event_id: e.event_id,
        customer_id: e.customer_id,
        occurred_at: Some(timestamp(e.occurred_at)),
        sent_at: e.sent_at.map(timestamp),
        payload: payloads.pop(),
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
    /// Comma-separated values with a header row, one order per row (see `--map`).
    Csv,
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
            Format::Csv => Err("CSV is read as records, not lines".to_owned()),
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

/// How CSV columns map to an order event's fields: `field=column` pairs for `customer_id`,
/// `occurred_at` and `amount` (required), and `event_id`, `order_id`, `currency`, `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvMapping {
    columns: BTreeMap<String, String>,
    /// Currency of every row when there is no `currency` column.
    default_currency: Option<String>,
}

const CSV_FIELDS: [&str; 7] = [
    "customer_id",
    "occurred_at",
    "amount",
    "event_id",
    "order_id",
    "currency",
    "items",
];

impl CsvMapping {
    /// Parses `field=column,…`; an unmapped field uses the column of its own name.
    pub fn parse(spec: &str, default_currency: Option<String>) -> Result<Self, String> {
        let mut columns: BTreeMap<String, String> = CSV_FIELDS
            .iter()
            .map(|f| (f.to_string(), f.to_string()))
            .collect();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, column) = pair
                .split_once('=')
                .ok_or_else(|| format!("mapping {pair:?}: expected FIELD=COLUMN"))?;
            if !CSV_FIELDS.contains(&field) {
                return Err(format!(
                    "mapping {pair:?}: unknown field {field:?}; fields are {}",
                    CSV_FIELDS.join(", ")
                ));
            }
            columns.insert(field.to_owned(), column.to_owned());
        }
        Ok(CsvMapping {
            columns,
            default_currency,
        })
    }

    /// The order event of one record (`line` numbers the record for deterministic ids).
    fn event(
        &self,
        headers: &csv::StringRecord,
        record: &csv::StringRecord,
        line: usize,
    ) -> Result<pb::Event, String> {
        let get = |field: &str| {
            let column = &self.columns[field];
            headers
                .iter()
                .position(|h| h == column)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let required = |field: &str| {
            get(field).ok_or_else(|| {
                format!(
                    "column {:?} ({field}) is missing or empty",
                    self.columns[field]
                )
            })
        };
        let customer = required("customer_id")?;
        let occurred = parse_time(required("occurred_at")?)?;
        let amount: f64 = required("amount")?
            .parse()
            .map_err(|e| format!("amount: {e}"))?;
        let event_id =
            get("event_id").map_or_else(|| format!("csv-{customer}-{line}"), str::to_owned);
        let currency = get("currency")
            .map(str::to_owned)
            .or_else(|| self.default_currency.clone())
            .unwrap_or_default();
        let items = get("items")
            .map(|v| v.parse::<u32>().map_err(|e| format!("items: {e}")))
            .transpose()?
            .unwrap_or(1);
        let order_id = get("order_id").map_or_else(|| event_id.clone(), str::to_owned);
        Ok(pb::Event {
            event_id,
            customer_id: customer.to_owned(),
            occurred_at: Some(timestamp(occurred)),
            sent_at: None,
            payload: Some(pb::event::Payload::Order(pb::Order {
                order_id,
                amount,
                currency,
                items,
            })),
        })
    }
}

/// A time as RFC 3339, `YYYY-MM-DD` or `YYYYMMDD` (midnight UTC).
fn parse_time(v: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d", "%Y%m%d"]
        .iter()
        .find_map(|f| chrono::NaiveDate::parse_from_str(v, f).ok())
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .ok_or_else(|| format!("occurred_at {v:?}: expected RFC 3339, YYYY-MM-DD or YYYYMMDD"))
}

/// Events of a file with their line numbers; unreadable lines carry the reason.
pub type Lines<'a> = Box<dyn Iterator<Item = (usize, Result<Option<pb::Event>, String>)> + 'a>;

/// The events of a line-oriented file (JSONL, CDNOW).
pub fn lines<'a, R: BufRead + 'a>(reader: R, format: Format) -> Lines<'a> {
    Box::new(reader.lines().enumerate().map(move |(i, line)| {
        (
            i + 1,
            line.map_err(|e| e.to_string())
                .and_then(|l| format.parse(i + 1, &l)),
        )
    }))
}

/// The events of `events` with every time in them moved by one whole number of days, so that
/// the latest falls on the day of `now` — or the day before, when its time of day is still
/// to come (an event in the future would be refused): a recorded file replayed as recent
/// activity (a trial, a demo). Whole days keep a second import on the same day identical, so
/// it finds only duplicates. Reads every event first.
pub fn shifted_to<'a>(events: Lines<'a>, now: DateTime<chrono::Utc>) -> Lines<'a> {
    let all: Vec<_> = events.collect();
    let latest = all
        .iter()
        .filter_map(|(_, e)| e.as_ref().ok()?.as_ref()?.occurred_at.as_ref())
        .map(|t| t.seconds)
        .max()
        .and_then(|s| DateTime::from_timestamp(s, 0));
    let Some(latest) = latest else {
        return Box::new(all.into_iter());
    };
    let mut days = (now.date_naive() - latest.date_naive()).num_days();
    if latest + chrono::Duration::days(days) > now {
        days -= 1;
    }
    let seconds = days * 86_400;
    Box::new(all.into_iter().map(move |(n, e)| {
        (
            n,
            e.map(|e| {
                e.map(|mut e| {
                    shift(&mut e, seconds);
                    e
                })
            }),
        )
    }))
}

/// Moves every time an event holds by `seconds` (the envelope's and a payment's).
fn shift(e: &mut pb::Event, seconds: i64) {
    let mut times = vec![&mut e.occurred_at, &mut e.sent_at];
    if let Some(pb::event::Payload::Payment(p)) = &mut e.payload {
        times.extend([&mut p.due_at, &mut p.paid_at]);
    }
    for t in times.into_iter().flatten() {
        t.seconds += seconds;
    }
}

/// The order events of a CSV file with a header row.
pub fn csv_rows<'a, R: std::io::Read + 'a>(
    reader: R,
    mapping: CsvMapping,
) -> Result<Lines<'a>, String> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| format!("header row: {e}"))?
        .clone();
    for field in ["customer_id", "occurred_at", "amount"] {
        let column = &mapping.columns[field];
        if !headers.iter().any(|h| h == column) {
            return Err(format!(
                "no column {column:?} for {field}; the header has {:?}",
                headers.iter().collect::<Vec<_>>()
            ));
        }
    }
    Ok(Box::new(csv.into_records().enumerate().map(
        move |(i, record)| {
            let line = i + 2;
            (
                line,
                record
                    .map_err(|e| e.to_string())
                    .and_then(|r| mapping.event(&headers, &r, line))
                    .map(Some),
            )
        },
    )))
}

/// How many times one batch waits out a pushback (the tenant's rate limit) before the import
/// gives up.
pub const MAX_PUSHBACKS: u32 = 600;

/// Sends events in batches, calling `send` for each, and totals the answers.
pub async fn run<F, Fut>(events: Lines<'_>, mut send: F) -> anyhow::Result<Summary>
where
    F: FnMut(Vec<pb::Event>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<pb::IngestResponse>>,
{
    let mut summary = Summary::default();
    let mut batch = Vec::with_capacity(BATCH);
    for (line, parsed) in events {
        match parsed {
            Ok(Some(event)) => batch.push(event),
            Ok(None) => {}
            Err(error) => summary.unreadable.push((line, error)),
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

/// The name an import of `file` is known by in alert summaries: the file's name
/// (`stdin` for `-`).
pub fn backfill_label(file: &std::path::Path) -> String {
    if file.as_os_str() == "-" {
        return "stdin".to_owned();
    }
    file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_to_today_moves_every_time_by_whole_days_keeping_the_gaps() {
        let file = concat!(
            r#"{"event_id":"a","customer_id":"c","occurred_at":"2026-11-02T09:00:00Z","order":{"order_id":"o","amount":1,"currency":"EUR"}}"#,
            "\n",
            r#"{"event_id":"b","customer_id":"c","occurred_at":"2026-11-15T08:30:00Z","sent_at":"2026-11-15T08:31:00Z","payment":{"invoice_id":"i","due_at":"2026-11-20T00:00:00Z","amount":1,"currency":"EUR"}}"#,
            "\n",
            "not json\n",
        );
        let now = "2027-01-10T12:00:00Z".parse().unwrap();
        let events: Vec<_> = shifted_to(lines(file.as_bytes(), Format::Jsonl), now).collect();
        let time = |t: &Option<prost_types::Timestamp>| {
            DateTime::from_timestamp(t.as_ref().unwrap().seconds, 0)
                .unwrap()
                .to_rfc3339()
        };
        let first = events[0].1.as_ref().unwrap().as_ref().unwrap();
        let second = events[1].1.as_ref().unwrap().as_ref().unwrap();
        // 56 days: 2026-11-15 becomes 2027-01-10, at the same time of day.
        assert_eq!(time(&second.occurred_at), "2027-01-10T08:30:00+00:00");
        assert_eq!(time(&second.sent_at), "2027-01-10T08:31:00+00:00");
        assert_eq!(time(&first.occurred_at), "2026-12-28T09:00:00+00:00");
        let Some(pb::event::Payload::Payment(payment)) = &second.payload else {
            panic!("a payment");
        };
        assert_eq!(time(&payment.due_at), "2027-01-15T00:00:00+00:00");
        assert!(events[2].1.is_err(), "an unreadable line stays unreadable");
        // Before 08:30 the latest event would be in the future: it falls on the day before.
        let early = "2027-01-10T06:00:00Z".parse().unwrap();
        let events: Vec<_> = shifted_to(lines(file.as_bytes(), Format::Jsonl), early).collect();
        let second = events[1].1.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(time(&second.occurred_at), "2027-01-09T08:30:00+00:00");
    }

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
    fn csv_rows_map_to_orders() {
        let text =
            "cust,when,total,cur\nann,2026-01-02,12.5,EUR\nbob,20260103,7,\n,2026-01-04,1,EUR\n";
        let mapping = CsvMapping::parse(
            "customer_id=cust,occurred_at=when,amount=total,currency=cur",
            Some("USD".into()),
        )
        .unwrap();
        let rows: Vec<_> = csv_rows(text.as_bytes(), mapping).unwrap().collect();
        assert_eq!(rows.len(), 3);
        let ann = rows[0].1.clone().unwrap().unwrap();
        assert_eq!(
            (ann.event_id.as_str(), ann.customer_id.as_str()),
            ("csv-ann-2", "ann")
        );
        assert!(
            matches!(ann.payload, Some(pb::event::Payload::Order(ref o)) if o.amount == 12.5 && o.currency == "EUR")
        );
        let bob = rows[1].1.clone().unwrap().unwrap();
        assert!(
            matches!(bob.payload, Some(pb::event::Payload::Order(ref o)) if o.currency == "USD"),
            "default currency"
        );
        assert_eq!(rows[2].0, 4);
        assert!(rows[2].1.clone().unwrap_err().contains("customer_id"));
        let bad = CsvMapping::parse("colour=x", None).unwrap_err();
        assert!(bad.contains("unknown field"));
        let missing = csv_rows(
            "a,b\n1,2\n".as_bytes(),
            CsvMapping::parse("", None).unwrap(),
        )
        .err()
        .unwrap();
        assert!(missing.contains("customer_id"), "{missing}");
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

    #[test]
    fn every_event_type_parses_with_short_enum_names() {
        let at = r#""event_id":"e","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z""#;
        let lines = [
            r#""refund":{"order_id":"o","amount":3,"currency":"EUR"}"#,
            r#""survey":{"kind":"csat","score":4}"#,
            r#""support_ticket":{"ticket_id":"t","status":"first_response","priority":"urgent"}"#,
            r#""engagement":{"kind":"feature_use","subject":"reports"}"#,
            r#""subscription":{"plan":"pro","change":"downgrade","mrr":10,"currency":"EUR"}"#,
            r#""payment":{"invoice_id":"i","due_at":"2026-01-05T00:00:00Z","amount":10,"currency":"EUR"}"#,
            r#""profile":{"region":"EU","acquisition_cost":80,"currency":"EUR"}"#,
        ];
        for payload in lines {
            let event = parse_line(&format!("{{{at},{payload}}}")).unwrap();
            assert!(event.payload.is_some(), "{payload}");
        }
        let ticket = parse_line(&format!("{{{at},{}}}", lines[2])).unwrap();
        assert!(
            matches!(ticket.payload, Some(pb::event::Payload::SupportTicket(ref t))
            if t.status == pb::TicketStatus::FirstResponse as i32 && t.priority == pb::Priority::Urgent as i32)
        );
        let unknown = parse_line(&format!(
            r#"{{{at},"survey":{{"kind":"vibes","score":4}}}}"#
        ))
        .unwrap();
        assert!(
            matches!(unknown.payload, Some(pb::event::Payload::Survey(ref s)) if s.kind == 0),
            "left for the server to reject"
        );
    }
}
