//! Tiers and segments: KPIs per tier by month or quarter as small multiples, the tier, stage
//! and RFM distributions with the RFM grid, custom segments and their members.

use super::{Page, PageError, customer_link, html_page, layout, path_segment};
use crate::Console;
use crate::charts;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use maud::{Markup, html};
use rapport_proto::segmentation::v1 as seg;

/// Members listed per segment page.
const MEMBERS: u32 = 200;

/// A KPI the small multiples can draw: its query name, its title, and how to read it.
pub struct Kpi {
    pub key: &'static str,
    pub title: &'static str,
    pub read: fn(&seg::KpiRow) -> Option<f64>,
}

/// The KPIs offered, the first by default.
pub const KPIS: &[Kpi] = &[
    Kpi {
        key: "retention",
        title: "Retention %",
        read: |r| r.retention_pct,
    },
    Kpi {
        key: "churn",
        title: "Churn %",
        read: |r| r.churn_pct,
    },
    Kpi {
        key: "nps",
        title: "NPS",
        read: |r| r.nps,
    },
    Kpi {
        key: "csat",
        title: "CSAT %",
        read: |r| r.csat_pct,
    },
    Kpi {
        key: "clv",
        title: "Average 12-month value",
        read: |r| r.clv_avg,
    },
    Kpi {
        key: "complaints",
        title: "Complaints per customer",
        read: |r| r.complaint_rate,
    },
];

/// The page's choices, from the query string.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub kpi: String,
}

impl Choice {
    fn granularity(&self) -> Result<seg::Granularity, PageError> {
        match self.by.as_str() {
            "" | "month" => Ok(seg::Granularity::Month),
            "quarter" => Ok(seg::Granularity::Quarter),
            other => Err(PageError::BadInput(format!(
                "by: month or quarter, not {other:?}"
            ))),
        }
    }

    fn kpi(&self) -> Result<&'static Kpi, PageError> {
        match self.kpi.as_str() {
            "" => Ok(&KPIS[0]),
            key => KPIS
                .iter()
                .find(|k| k.key == key)
                .ok_or_else(|| PageError::BadInput(format!("kpi: no KPI is called {key:?}"))),
        }
    }
}

/// `GET /segments`.
pub async fn show(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(choice): Query<Choice>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let granularity = choice.granularity()?;
    let kpi = choice.kpi()?;
    let (mut a, mut b, mut c) = (
        console.backends.segmentation(),
        console.backends.segmentation(),
        console.backends.segmentation(),
    );
    let (kpis, distribution, custom) = tokio::join!(
        // The default periods (the year up to now): the report kept since the latest run.
        a.get_kpis(caller.request(seg::GetKpisRequest {
            granularity: granularity.into(),
            by_tier: true,
            ..Default::default()
        })),
        b.get_distribution(caller.request(seg::GetDistributionRequest {})),
        c.list_custom_segments(caller.request(seg::ListCustomSegmentsRequest {})),
    );
    Ok(html_page(layout(
        "Tiers and segments",
        Some(&caller),
        "/segments",
        render(
            &choice,
            kpi,
            &kpis?.into_inner(),
            &distribution?.into_inner(),
            &custom?.into_inner().segments,
        ),
    )))
}

/// The page's body.
pub fn render(
    choice: &Choice,
    kpi: &Kpi,
    report: &seg::GetKpisResponse,
    distribution: &seg::Distribution,
    custom: &[seg::CustomSegment],
) -> Markup {
    let rows = report.rows.as_slice();
    let tiers = ["vip", "gold", "silver", "bronze", "regular"];
    let of_tier = |name: &str| -> Vec<(String, Option<f64>)> {
        rows.iter()
            .filter(|r| super::tier_name(r.tier) == name)
            .map(|r| (r.period.clone(), (kpi.read)(r)))
            .collect()
    };
    // One scale for every tier's chart, so the charts compare at a glance.
    let values: Vec<f64> = rows.iter().filter_map(|r| (kpi.read)(r)).collect();
    let range = (
        values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(0.0),
        values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
            .max(1.0),
    );
    let count_bars = |items: Vec<(String, u64)>| -> Vec<(String, &'static str, u64)> {
        items.into_iter().map(|(n, c)| (n, "bar", c)).collect()
    };
    let tier_counts: Vec<(String, u64)> = distribution
        .tiers
        .iter()
        .map(|t| (super::tier_name(t.tier).to_owned(), t.customers))
        .collect();
    let stage_counts: Vec<(String, u64)> = distribution
        .stages
        .iter()
        .map(|s| (s.segment.clone(), s.customers))
        .collect();
    let rfm_counts: Vec<(String, u64)> = distribution
        .rfm_segments
        .iter()
        .map(|s| (s.segment.clone(), s.customers))
        .collect();
    let grid: Vec<(u32, u32, u64)> = distribution
        .rfm_grid
        .iter()
        .map(|c| (c.recency_score, c.frequency_score, c.customers))
        .collect();
    html! {
        h1 { "Tiers and segments" }
        form.filters method="get" action="/segments" {
            label { "KPI " select name="kpi" {
                @for k in KPIS { option value=(k.key) selected[k.key == kpi.key] { (k.title) } }
            } }
            label { "By " select name="by" {
                option value="month" selected[choice.by != "quarter"] { "month" }
                option value="quarter" selected[choice.by == "quarter"] { "quarter" }
            } }
            button type="submit" { "Show" }
        }
        section {
            h2 { (kpi.title) " per tier" }
            @if report.computed_at.is_some() {
                p.meta { "As of " (super::when(report.computed_at.as_ref())) "; each segmentation run brings them up to date." }
            }
            @if rows.is_empty() {
                (super::nothing("No KPIs yet: they need events and a segmentation run."))
            } @else {
                div.multiples {
                    @for tier in tiers {
                        figure {
                            figcaption { a href=(format!("/customers?tier={tier}")) { (tier) } }
                            (charts::small_line(&format!("{} of {tier} customers", kpi.title), &of_tier(tier), range))
                        }
                    }
                }
                details { summary { "Data" }
                    table { thead { tr { th { "Period" } th { "Tier" } th.num { "Customers" } th.num { (kpi.title) } } }
                        tbody { @for r in rows { tr {
                            td { (r.period) } td { (super::tier_name(r.tier)) } td.num { (r.customers) }
                            td.num { (super::number((kpi.read)(r), 1)) }
                        } } }
                    }
                }
            }
        }
        section.split {
            div {
                h2 { "Tiers" }
                (distribution_block("Customers per tier", count_bars(tier_counts.clone()), |n| Some(format!("/customers?tier={n}"))))
            }
            div {
                h2 { "Lifecycle stages" }
                (distribution_block("Customers per stage", count_bars(stage_counts), |n| Some(format!("/customers?stage={}", path_segment(n)))))
            }
        }
        section {
            h2 { "RFM segments" }
            div.split {
                div {
                    (distribution_block("Customers per RFM segment", count_bars(rfm_counts), |n| Some(format!("/customers?rfm={}", path_segment(n)))))
                }
                @if !grid.is_empty() {
                    div {
                        (charts::rfm_grid("Customers by recency and frequency score", &grid))
                        details { summary { "Data" }
                            table { thead { tr { th.num { "Recency" } th.num { "Frequency" } th.num { "Customers" } } }
                                tbody { @for (r, f, n) in &grid { tr { td.num { (r) } td.num { (f) } td.num { (n) } } } }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Custom segments" }
            @if custom.is_empty() {
                (super::nothing("None defined (rapport segments define NAME EXPRESSION, then rapport segment)."))
            } @else {
                table { thead { tr { th { "Segment" } th { "Expression" } th.num { "Members" } } }
                    tbody { @for c in custom { tr {
                        td { a href=(format!("/segments/{}", path_segment(&c.name))) { (c.name) } }
                        td { code { (c.expression) } } td.num { (c.members) }
                    } } }
                }
            }
        }
    }
}

fn distribution_block(
    title: &str,
    bars: Vec<(String, &'static str, u64)>,
    link: impl Fn(&str) -> Option<String>,
) -> Markup {
    if bars.iter().all(|b| b.2 == 0) {
        return super::nothing("Nobody graded yet.");
    }
    html! {
        (charts::bars(title, &bars))
        details { summary { "Data" }
            table { thead { tr { th { "Group" } th.num { "Customers" } } }
                tbody { @for (name, _, n) in &bars { tr {
                    td { @match link(name) { Some(href) => { a href=(href) { (name) } }, None => { (name) } } }
                    td.num { (n) }
                } } }
            }
        }
    }
}

/// `GET /segments/{name}`: a custom segment's members.
pub async fn members(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let page = console
        .backends
        .segmentation()
        .list_segment_members(caller.request(seg::ListSegmentMembersRequest {
            name: name.clone(),
            page_size: MEMBERS,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(html_page(layout(
        &format!("Segment {name}"),
        Some(&caller),
        "/segments",
        html! {
            h1 { "Segment " (name) }
            p { (page.total) " members"
                @if page.total > page.customer_ids.len() as u64 { "; the first " (page.customer_ids.len()) " below" }
                " · " a href=(format!("/customers?segment={}", path_segment(&name))) { "as a table, with their scores" } }
            ul.members { @for id in &page.customer_ids { li { (customer_link(id)) } } }
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        period: &str,
        tier: rapport_proto::common::v1::Tier,
        retention: Option<f64>,
    ) -> seg::KpiRow {
        seg::KpiRow {
            period: period.into(),
            tier: tier.into(),
            retention_pct: retention,
            customers: 10,
            ..Default::default()
        }
    }

    #[test]
    fn one_small_chart_per_tier_on_one_scale_with_links_to_the_members() {
        use rapport_proto::common::v1::Tier;
        let report = seg::GetKpisResponse {
            rows: vec![
                row("2026-01", Tier::Gold, Some(80.0)),
                row("2026-02", Tier::Gold, Some(70.0)),
                row("2026-01", Tier::Vip, Some(95.0)),
            ],
            computed_at: Some(rapport_proto::convert::timestamp(0)),
        };
        let distribution = seg::Distribution {
            customers: 30,
            tiers: vec![seg::TierCount {
                tier: Tier::Gold.into(),
                customers: 20,
            }],
            rfm_segments: vec![seg::SegmentCount {
                segment: "Can't Lose Them".into(),
                customers: 4,
            }],
            rfm_grid: vec![seg::RfmCell {
                recency_score: 1,
                frequency_score: 5,
                customers: 4,
            }],
            ..Default::default()
        };
        let page = render(&Choice::default(), &KPIS[0], &report, &distribution, &[]).into_string();
        assert!(page.contains("As of <time datetime=\"1970-01-01T00:00:00+00:00\">"));
        assert!(
            page.contains("href=\"/customers?rfm=Can%27t%20Lose%20Them\""),
            "{page}"
        );
        assert!(page.contains("<title>recency 1, frequency 5: 4</title>"));
        assert_eq!(page.matches("<svg class=\"small\"").count(), 5, "{page}");
        assert!(page.contains("<title>Retention % of gold customers</title>"));
        assert!(page.contains("href=\"/customers?tier=gold\""));
        assert!(page.contains("Nobody graded yet."), "no stages: {page}");
    }

    #[test]
    fn choices_are_checked_by_field() {
        let bad = Choice {
            by: "week".into(),
            ..Default::default()
        };
        assert!(
            bad.granularity()
                .unwrap_err()
                .to_string()
                .starts_with("by:")
        );
        let bad = Choice {
            kpi: "mood".into(),
            ..Default::default()
        };
        assert!(bad.kpi().is_err_and(|e| e.to_string().starts_with("kpi:")));
        let ok = Choice {
            kpi: "nps".into(),
            by: "quarter".into(),
        };
        assert_eq!(ok.kpi().map(|k| k.title).ok(), Some("NPS"));
        assert_eq!(ok.granularity().ok(), Some(seg::Granularity::Quarter));
    }
}
