//! The customers table: filtered by tier, band, stage, P(alive), RFM or custom segment,
//! sorted, with each score's recent line and standing alerts, and as CSV.

use super::{Page, PageError, band_badge, biggest_drag, change, customer_link, html_page, layout};
use crate::Console;
use crate::backends::Caller;
use crate::charts;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use maud::{Markup, html};
use rapport_domain::lifecycle::Stage;
use rapport_domain::rfm::RfmSegment;
use rapport_domain::scorecard::Band;
use rapport_domain::tier::Tier;
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::common::v1 as common;
use rapport_proto::convert;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::segmentation::v1 as seg;
use std::collections::HashMap;

/// Rows a page shows unless asked otherwise, and the most it may ask for.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1_000;
/// Scores drawn in a row's line.
const SPARK_POINTS: u32 = 30;
/// Rows that get a line: each is a call for the row's history, and a long table's lines would
/// cost more than the rest of the page.
const SPARK_ROWS: usize = 100;

/// The table's filters and order, from the query string.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub tier: String,
    #[serde(default)]
    pub band: String,
    #[serde(default)]
    pub stage: String,
    /// A custom segment: its members (the first `limit` by id), sorted.
    #[serde(default)]
    pub segment: String,
    /// An RFM segment, by name: its members, as for a custom segment.
    #[serde(default)]
    pub rfm: String,
    /// Only customers whose P(alive) is below this (0–1).
    #[serde(default)]
    pub p_alive: String,
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub sort: String,
}

/// The filters, checked, as the listing asks for them.
#[derive(Debug, PartialEq)]
pub struct Listing {
    pub tier: Option<Tier>,
    pub band: Option<Band>,
    pub stage: Option<Stage>,
    pub p_alive_below: Option<f64>,
    /// Whose members to list instead of the lowest scores.
    pub members: Option<Members>,
    pub limit: u32,
    pub sort: Sort,
}

/// A segment whose members the table lists.
#[derive(Debug, Clone, PartialEq)]
pub enum Members {
    Custom(String),
    Rfm(RfmSegment),
}

/// Orders of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Score,
    Change,
    Value,
    Customer,
}

impl Filters {
    /// The listing these filters ask for, or what is wrong with them, by field.
    pub fn listing(&self) -> Result<Listing, PageError> {
        let tier =
            match self.tier.as_str() {
                "" => None,
                name => Some(Tier::from_name(name).ok_or_else(|| {
                    PageError::BadInput(format!("tier: no tier is called {name:?}"))
                })?),
            };
        let band =
            match self.band.as_str() {
                "" => None,
                name => Some(Band::from_name(name).ok_or_else(|| {
                    PageError::BadInput(format!("band: no band is called {name:?}"))
                })?),
            };
        let stage = match self.stage.as_str() {
            "" => None,
            name => Some(Stage::from_name(name).ok_or_else(|| {
                PageError::BadInput(format!("stage: no stage is called {name:?}"))
            })?),
        };
        let members = match (self.segment.trim(), self.rfm.as_str()) {
            ("", "") => None,
            (custom, "") => Some(Members::Custom(custom.to_owned())),
            ("", name) => Some(Members::Rfm(
                RfmSegment::ALL
                    .into_iter()
                    .find(|s| s.name() == name)
                    .ok_or_else(|| {
                        PageError::BadInput(format!("rfm: no RFM segment is called {name:?}"))
                    })?,
            )),
            _ => {
                return Err(PageError::BadInput(
                    "rfm: choose an RFM segment or a custom segment, not both".into(),
                ));
            }
        };
        let p_alive_below = match self.p_alive.trim() {
            "" => None,
            p => Some(
                p.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| {
                        PageError::BadInput(format!("p_alive: a number from 0 to 1, not {p:?}"))
                    })?,
            ),
        };
        let limit = match self.limit.as_deref().unwrap_or("") {
            "" => DEFAULT_LIMIT,
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    PageError::BadInput(format!("limit: a number from 1 to {MAX_LIMIT}, not {n:?}"))
                })?,
        };
        let sort = match self.sort.as_str() {
            "" | "score" => Sort::Score,
            "change" => Sort::Change,
            "value" => Sort::Value,
            "customer" => Sort::Customer,
            other => {
                return Err(PageError::BadInput(format!(
                    "sort: one of score, change, value, customer, not {other:?}"
                )));
            }
        };
        Ok(Listing {
            tier,
            band,
            stage,
            p_alive_below,
            members,
            limit,
            sort,
        })
    }
}

async fn list(
    console: &Console,
    caller: &Caller,
    listing: &Listing,
) -> Result<Vec<scoring::HealthScore>, tonic::Status> {
    let mut scores = match &listing.members {
        None => {
            console
                .backends
                .scoring()
                .list_health(
                    caller.request(scoring::ListHealthRequest {
                        limit: listing.limit,
                        tier: convert::tier(listing.tier).into(),
                        band: listing
                            .band
                            .map_or(common::HealthBand::Unspecified, convert::band)
                            .into(),
                        stage: listing.stage.map_or("", Stage::name).to_owned(),
                        p_alive_below: listing.p_alive_below,
                    }),
                )
                .await?
                .into_inner()
                .scores
        }
        Some(members) => {
            let (name, rfm_segment) = match members {
                Members::Custom(name) => (name.clone(), String::new()),
                Members::Rfm(segment) => (String::new(), segment.name().to_owned()),
            };
            let members = console
                .backends
                .segmentation()
                .list_segment_members(caller.request(seg::ListSegmentMembersRequest {
                    name,
                    rfm_segment,
                    page_size: listing.limit,
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .customer_ids;
            let mut scores = console
                .backends
                .scoring()
                .batch_get_health(caller.request(scoring::BatchGetHealthRequest {
                    customer_ids: members,
                }))
                .await?
                .into_inner()
                .scores;
            // The members' own rows: the other filters apply to them exactly.
            scores.retain(|h| listing.keeps(h));
            scores.sort_by(|a, b| {
                a.score
                    .total_cmp(&b.score)
                    .then(a.customer_id.cmp(&b.customer_id))
            });
            scores
        }
    };
    sort(&mut scores, listing.sort);
    Ok(scores)
}

impl Listing {
    /// Whether a score passes the tier, band, stage and P(alive) filters.
    pub fn keeps(&self, h: &scoring::HealthScore) -> bool {
        self.p_alive_below
            .is_none_or(|below| h.p_alive.is_some_and(|p| p < below))
            && self.keeps_grades(h)
    }

    fn keeps_grades(&self, h: &scoring::HealthScore) -> bool {
        self.tier
            .is_none_or(|t| convert::domain_tier(h.tier) == Some(t))
            && self
                .band
                .is_none_or(|b| convert::domain_band(h.band) == Some(b))
            && self.stage.is_none_or(|s| h.stage == s.name())
    }
}

/// Orders rows: by score (lowest first, as listed), by 30-day change (steepest fall first),
/// by 12-month value (highest first) or by customer id.
pub fn sort(scores: &mut [scoring::HealthScore], by: Sort) {
    match by {
        Sort::Score => {}
        Sort::Change => scores.sort_by(|a, b| {
            let key = |h: &scoring::HealthScore| h.trend_30d.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        }),
        Sort::Value => scores.sort_by(|a, b| {
            let key = |h: &scoring::HealthScore| h.clv_12m.unwrap_or(f64::NEG_INFINITY);
            key(b).total_cmp(&key(a))
        }),
        Sort::Customer => scores.sort_by(|a, b| a.customer_id.cmp(&b.customer_id)),
    }
}

/// `GET /customers`.
pub async fn show(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let listing = filters.listing()?;
    let scores = list(&console, &caller, &listing).await?;
    let (lines, standing) = tokio::join!(
        recent_scores(&console, &caller, &scores),
        standing_alerts(&console, &caller, &scores)
    );
    let rows = Rows {
        scores: &scores,
        lines: &lines,
        standing: &standing?,
    };
    Ok(html_page(layout(
        "Customers",
        Some(&caller),
        "/customers",
        render(&filters, &rows),
    )))
}

/// `GET /customers.csv`: the same rows as the table, for a spreadsheet.
pub async fn csv(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let listing = filters.listing()?;
    let scores = list(&console, &caller, &listing).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"customers.csv\"",
            ),
        ],
        to_csv(&scores),
    )
        .into_response())
}

/// The rows as CSV, with a header line.
pub fn to_csv(scores: &[scoring::HealthScore]) -> String {
    let mut out =
        String::from("customer_id,score,band,tier,stage,change_30d,costs_most,p_alive,clv_12m\n");
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for h in scores {
        let fields = [
            h.customer_id.clone(),
            format!("{}", h.score),
            super::band_name(h.band).to_owned(),
            super::tier_name(h.tier).to_owned(),
            h.stage.clone(),
            opt(h.trend_30d),
            biggest_drag(h)
                .map(|(m, _)| m.to_owned())
                .unwrap_or_default(),
            opt(h.p_alive),
            opt(h.clv_12m),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

// Quoted when it must be; a leading formula character is defused so a spreadsheet shows the
// text rather than running it.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// How many alerts stand (are not resolved) for each listed customer.
async fn standing_alerts(
    console: &Console,
    caller: &Caller,
    scores: &[scoring::HealthScore],
) -> Result<HashMap<String, u32>, tonic::Status> {
    if scores.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(console
        .backends
        .alerting()
        .count_standing_alerts(caller.request(alerting::CountStandingAlertsRequest {
            customer_ids: scores.iter().map(|h| h.customer_id.clone()).collect(),
        }))
        .await?
        .into_inner()
        .standing)
}

/// What the table shows: the scores, and per customer its recent line and standing alerts.
pub struct Rows<'a> {
    pub scores: &'a [scoring::HealthScore],
    pub lines: &'a HashMap<String, Vec<f64>>,
    pub standing: &'a HashMap<String, u32>,
}

/// Each listed customer's recent scores, oldest first, fetched at once; a customer whose
/// history cannot be read gets no line rather than failing the page.
async fn recent_scores(
    console: &Console,
    caller: &Caller,
    scores: &[scoring::HealthScore],
) -> HashMap<String, Vec<f64>> {
    let mut calls = tokio::task::JoinSet::new();
    for h in scores.iter().take(SPARK_ROWS) {
        let mut client = console.backends.scoring();
        let req = caller.request(scoring::ListHealthHistoryRequest {
            customer_id: h.customer_id.clone(),
            limit: SPARK_POINTS,
            ..Default::default()
        });
        let id = h.customer_id.clone();
        calls.spawn(async move { (id, client.list_health_history(req).await) });
    }
    let mut out = HashMap::new();
    while let Some(Ok((id, answer))) = calls.join_next().await {
        if let Ok(answer) = answer {
            let mut points = answer.into_inner().points;
            points.sort_by_key(|p| p.computed_at.as_ref().map(|t| (t.seconds, t.nanos)));
            out.insert(id, points.iter().map(|p| p.score).collect());
        }
    }
    out
}

/// The customers page's body.
pub fn render(filters: &Filters, rows: &Rows) -> Markup {
    let &Rows {
        scores,
        lines,
        standing,
    } = rows;
    let query = format!(
        "tier={}&band={}&stage={}&segment={}&rfm={}&p_alive={}&limit={}&sort={}",
        filters.tier,
        filters.band,
        filters.stage,
        super::path_segment(&filters.segment),
        super::path_segment(&filters.rfm),
        super::path_segment(&filters.p_alive),
        filters.limit.as_deref().unwrap_or(""),
        filters.sort
    );
    html! {
        h1 { "Customers" }
        form.filters method="get" action="/customers" {
            label { "Tier " select name="tier" {
                option value="" { "any" }
                @for t in ["vip", "gold", "silver", "bronze", "regular"] {
                    option value=(t) selected[filters.tier == t] { (t) }
                }
            } }
            label { "Band " select name="band" {
                option value="" { "any" }
                @for b in ["red", "yellow", "green"] {
                    option value=(b) selected[filters.band == b] { (b) }
                }
            } }
            label { "Stage " select name="stage" {
                option value="" { "any" }
                @for s in Stage::ALL {
                    option value=(s.name()) selected[filters.stage == s.name()] { (s.name()) }
                }
            } }
            label { "RFM " select name="rfm" {
                option value="" { "any" }
                @for s in RfmSegment::ALL {
                    option value=(s.name()) selected[filters.rfm == s.name()] { (s.name()) }
                }
            } }
            label { "P(alive) below " input name="p_alive" type="number" min="0" max="1" step="0.05" value=(filters.p_alive); }
            label { "Segment " input name="segment" value=(filters.segment) placeholder="custom segment"; }
            label { "Sort " select name="sort" {
                @for (value, name) in [("score", "lowest score"), ("change", "steepest fall"), ("value", "highest value"), ("customer", "customer id")] {
                    option value=(value) selected[filters.sort == value] { (name) }
                }
            } }
            label { "Rows " input name="limit" type="number" min="1" max=(MAX_LIMIT)
                value=(filters.limit.clone().unwrap_or_else(|| DEFAULT_LIMIT.to_string())); }
            button type="submit" { "Show" }
            a.csv href=(format!("/customers.csv?{query}")) { "CSV" }
        }
        @if scores.is_empty() {
            (super::nothing("No customer matches."))
        } @else {
            table id="customers" {
                thead { tr {
                    th { "Customer" } th.num { "Score" } th { "Band" } th { "Tier" } th { "Stage" }
                    th.num { "30 days" }
                    th { "Recent" @if scores.len() > SPARK_ROWS { " (first " (SPARK_ROWS) ")" } }
                    th { "Costs most" } th.num { "Open alerts" } th.num { "P(alive)" }
                    th.num { "12-month value" }
                } }
                tbody {
                    @for h in scores {
                        tr data-customer=(h.customer_id) {
                            td { (customer_link(&h.customer_id)) }
                            td.num { (format!("{:.1}", h.score)) }
                            td { (band_badge(h.band)) }
                            td { (super::tier_name(h.tier)) }
                            td { (h.stage) }
                            td.num { (change(h.trend_30d)) }
                            td { @if let Some(line) = lines.get(&h.customer_id).filter(|l| l.len() > 1) {
                                (charts::sparkline(&format!("Recent scores of {}", h.customer_id), line))
                            } }
                            td { @if let Some((m, _)) = biggest_drag(h) { (m) } }
                            td.num.standing {
                                @match standing.get(&h.customer_id) {
                                    Some(n) => { a href=(format!("{}#alerts", super::customer_path(&h.customer_id))) { (n) } }
                                    None => { "0" }
                                }
                            }
                            td.num { (super::number(h.p_alive, 2)) }
                            td.num { (super::number(h.clv_12m, 0)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_by_field() {
        let ok = Filters {
            tier: "gold".into(),
            band: "red".into(),
            limit: Some("10".into()),
            sort: "change".into(),
            ..Default::default()
        };
        assert_eq!(
            ok.listing().unwrap(),
            Listing {
                tier: Some(Tier::Gold),
                band: Some(Band::Red),
                stage: None,
                p_alive_below: None,
                members: None,
                limit: 10,
                sort: Sort::Change
            }
        );
        for (bad, field) in [
            (
                Filters {
                    tier: "platinum".into(),
                    ..Default::default()
                },
                "tier:",
            ),
            (
                Filters {
                    band: "blue".into(),
                    ..Default::default()
                },
                "band:",
            ),
            (
                Filters {
                    limit: Some("0".into()),
                    ..Default::default()
                },
                "limit:",
            ),
            (
                Filters {
                    limit: Some("x".into()),
                    ..Default::default()
                },
                "limit:",
            ),
            (
                Filters {
                    sort: "age".into(),
                    ..Default::default()
                },
                "sort:",
            ),
            (
                Filters {
                    rfm: "Sleepers".into(),
                    ..Default::default()
                },
                "rfm:",
            ),
            (
                Filters {
                    rfm: "Champions".into(),
                    segment: "vips".into(),
                    ..Default::default()
                },
                "rfm:",
            ),
            (
                Filters {
                    p_alive: "1.5".into(),
                    ..Default::default()
                },
                "p_alive:",
            ),
        ] {
            let e = bad.listing().unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
    }

    fn h(id: &str, score: f64, trend: Option<f64>, clv: Option<f64>) -> scoring::HealthScore {
        scoring::HealthScore {
            customer_id: id.into(),
            score,
            trend_30d: trend,
            clv_12m: clv,
            ..Default::default()
        }
    }

    #[test]
    fn a_stage_is_checked_and_a_segment_s_members_are_filtered_exactly() {
        let bad = Filters {
            stage: "asleep".into(),
            ..Default::default()
        };
        assert!(bad.listing().unwrap_err().to_string().starts_with("stage:"));
        let listing = Filters {
            stage: "at_risk".into(),
            band: "red".into(),
            segment: " vips ".into(),
            ..Default::default()
        }
        .listing()
        .unwrap();
        assert_eq!(listing.members, Some(Members::Custom("vips".into())));
        let mut member = h("a", 10.0, None, None);
        member.band = common::HealthBand::Red.into();
        member.stage = "at_risk".into();
        assert!(listing.keeps(&member));
        member.stage = "active".into();
        assert!(!listing.keeps(&member));
    }

    #[test]
    fn an_rfm_segment_lists_its_members_and_p_alive_keeps_those_below_it() {
        let listing = Filters {
            rfm: "Can't Lose Them".into(),
            p_alive: "0.3".into(),
            ..Default::default()
        }
        .listing()
        .unwrap();
        assert_eq!(
            listing.members,
            Some(Members::Rfm(RfmSegment::CantLoseThem))
        );
        let mut member = h("a", 10.0, None, None);
        for (p_alive, kept) in [(Some(0.1), true), (Some(0.3), false), (None, false)] {
            member.p_alive = p_alive;
            assert_eq!(listing.keeps(&member), kept, "{p_alive:?}");
        }
    }

    #[test]
    fn a_row_links_its_standing_alerts() {
        let scores = [h("a", 10.0, None, None), h("b", 20.0, None, None)];
        let standing = HashMap::from([("a".to_owned(), 3)]);
        let rows = Rows {
            scores: &scores,
            lines: &HashMap::new(),
            standing: &standing,
        };
        let page = render(&Filters::default(), &rows).into_string();
        assert!(
            page.contains("<a href=\"/customers/a#alerts\">3</a>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"num standing\">0</td>"), "{page}");
    }

    #[test]
    fn sorting_puts_the_steepest_fall_and_the_highest_value_first() {
        let mut rows = vec![
            h("a", 10.0, Some(-1.0), None),
            h("b", 20.0, Some(-9.0), Some(5.0)),
            h("c", 30.0, None, Some(50.0)),
        ];
        sort(&mut rows, Sort::Change);
        assert_eq!(
            rows.iter()
                .map(|r| r.customer_id.as_str())
                .collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        sort(&mut rows, Sort::Value);
        assert_eq!(
            rows.iter()
                .map(|r| r.customer_id.as_str())
                .collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
    }

    #[test]
    fn csv_quotes_what_it_must_and_defuses_formulas() {
        let csv = to_csv(&[
            h("=cmd|x", 12.5, Some(-3.0), None),
            h("a,b", 1.0, None, Some(2.0)),
        ]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "customer_id,score,band,tier,stage,change_30d,costs_most,p_alive,clv_12m"
        );
        assert_eq!(lines[1], "'=cmd|x,12.5,none,unassigned,,-3,,,");
        assert_eq!(lines[2], "\"a,b\",1,none,unassigned,,,,,2");
    }
}
