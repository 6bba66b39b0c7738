//! The multi-row statements of a save, built as text with numbered placeholders: one
//! statement per page of customers, not one per row.

use super::*;

/// One multi-row upsert of the customers' rows after a fold, each at the revision after
/// the one it was read at, written only where the stored row is still at that one (a new
/// customer's row only if none was stored meanwhile); answers the customers written.
pub(super) fn upsert_customers(
    backend: DbBackend,
    tenant: &str,
    rescored: &[&Rescored],
) -> Result<Option<Statement>, StoreError> {
    let mut list = ValuesList::new(backend, rescored.len());
    let now = rapport_storage::now_millis();
    for r in rescored {
        let s = &r.state;
        let id = r.customer_id.as_str();
        let overrides = to_json(id, &s.overrides)?;
        list.push([
            tenant.into(),
            id.into(),
            to_json(id, &s.metrics)?.into(),
            s.last_event_seq.into(),
            s.tier.map(|t| t.name().to_owned()).into(),
            now.into(),
            s.stage.map(|st| st.name().to_owned()).into(),
            s.stage_since.into(),
            Some(overrides).into(),
            (s.revision + 1).into(),
        ]);
    }
    Ok(list.statement(
        "INSERT INTO scoring_customers (tenant_id, customer_id, metrics, last_event_seq, tier, \
         updated_at, stage, stage_since, overrides, revision)",
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET metrics = excluded.metrics, \
         last_event_seq = excluded.last_event_seq, updated_at = excluded.updated_at, \
         revision = excluded.revision \
         WHERE scoring_customers.revision = excluded.revision - 1 \
         RETURNING customer_id",
    ))
}

/// One multi-row upsert of the score rows among `rescored` (those ever scored); `None` when
/// none is. A score row records the customer's revision it was computed from and never goes
/// back to an older one; a re-score's (`Columns::Score`) is written only while the customer
/// is still at that revision. Answers the customers written.
pub(super) fn upsert_scores(
    backend: DbBackend,
    tenant: &str,
    rescored: &[&Rescored],
    columns: Columns,
) -> Option<Statement> {
    let mut list = ValuesList::new(backend, rescored.len());
    let now = rapport_storage::now_millis();
    for r in rescored {
        let s = &r.state;
        if !has_score_row(s) {
            continue;
        }
        let revision = match columns {
            Columns::All => s.revision + 1,
            Columns::Score => s.revision,
        };
        list.push([
            tenant.into(),
            r.customer_id.as_str().into(),
            s.score.into(),
            s.score.map(score_step).into(),
            s.band.map(|b| b.name().to_owned()).into(),
            s.fingerprint.into(),
            s.signals.into(),
            Some(recent_bytes(&s.recent)).into(),
            now.into(),
            revision.into(),
            s.p_alive.into(),
        ]);
    }
    let current = match columns {
        Columns::All => "",
        Columns::Score => {
            " AND excluded.revision = (SELECT c.revision FROM scoring_customers c \
             WHERE c.tenant_id = excluded.tenant_id AND c.customer_id = excluded.customer_id)"
        }
    };
    list.statement(
        "INSERT INTO scoring_scores (tenant_id, customer_id, score, score_step, band, \
         fingerprint, signals, recent, updated_at, revision, p_alive)",
        &format!(
            "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET score = excluded.score, \
             score_step = excluded.score_step, band = excluded.band, \
             fingerprint = excluded.fingerprint, signals = excluded.signals, \
             recent = excluded.recent, updated_at = excluded.updated_at, \
             revision = excluded.revision, p_alive = excluded.p_alive \
             WHERE scoring_scores.revision <= excluded.revision{current} \
             RETURNING customer_id"
        ),
    )
}

/// The sigil of a numbered placeholder (`$3`, `?3`): numbered in both dialects, so the
/// values keep one order.
pub(super) fn sigil(backend: DbBackend) -> char {
    match backend {
        DbBackend::Postgres => '$',
        _ => '?',
    }
}

/// The tuples of a multi-row `VALUES` list as statement text, and their values. The text is
/// written into one string, not a string per placeholder: a page has tens of thousands.
pub(super) struct ValuesList {
    backend: DbBackend,
    rows: usize,
    text: String,
    values: Vec<sea_orm::Value>,
}

impl ValuesList {
    /// An empty list with room for `rows` tuples.
    fn new(backend: DbBackend, rows: usize) -> ValuesList {
        ValuesList {
            backend,
            rows,
            text: String::with_capacity(rows * 64),
            values: Vec::new(),
        }
    }

    fn push<const N: usize>(&mut self, row: [sea_orm::Value; N]) {
        use std::fmt::Write;
        let sigil = sigil(self.backend);
        if self.text.is_empty() {
            self.values.reserve(self.rows * N);
        } else {
            self.text.push_str(", ");
        }
        self.text.push('(');
        for i in 0..N {
            if i > 0 {
                self.text.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = write!(self.text, "{sigil}{}", self.values.len() + 1 + i);
        }
        self.text.push(')');
        self.values.extend(row);
    }

    /// `head VALUES (…), (…) tail` with the list's values; `None` when it has no tuple.
    fn statement(self, head: &str, tail: &str) -> Option<Statement> {
        if self.text.is_empty() {
            return None;
        }
        let sql = format!("{head} VALUES {} {tail}", self.text);
        Some(Statement::from_sql_and_values(
            self.backend,
            sql,
            self.values,
        ))
    }
}

/// One multi-row INSERT of the snapshots among `rescored`; `None` when none has one.
pub(super) fn insert_snapshots(
    backend: DbBackend,
    tenant: &str,
    rescored: &[&Rescored],
) -> Option<Statement> {
    let mut list = ValuesList::new(backend, rescored.len());
    for r in rescored {
        let Some(s) = &r.snapshot else { continue };
        list.push([
            tenant.into(),
            r.customer_id.as_str().into(),
            s.score.into(),
            s.band.name().into(),
            s.tier.map(|t| t.name().to_owned()).into(),
            s.scorecard_version.as_str().into(),
            // The legacy JSON columns: the body holds all of it.
            "".into(),
            s.computed_at.into(),
            s.outlook.map(|o| o.p_alive).into(),
            s.outlook.map(|o| o.expected_purchases_90d).into(),
            s.outlook.map(|o| o.clv).into(),
            Option::<String>::None.into(),
            s.body.clone().into(),
        ]);
    }
    list.statement(
        "INSERT INTO scoring_snapshots (tenant_id, customer_id, score, band, tier, \
         scorecard_version, measures, computed_at, p_alive, expected_purchases_90d, clv_12m, \
         detail, body)",
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::CustomerState;

    /// Every tuple of a statement has as many placeholders as its column list has columns,
    /// numbered in order, and the statement carries one value per placeholder.
    fn aligned(statement: Statement) {
        let sql = statement.sql.as_str();
        let open = sql.find('(').expect("a column list");
        let close = open + sql[open..].find(')').expect("its end");
        let columns = sql[open + 1..close].split(',').count();
        let values = sql.find(" VALUES ").expect("a VALUES list") + " VALUES ".len();
        let mut next = 1;
        let mut rest = &sql[values..];
        while let Some(tuple) = rest.strip_prefix('(') {
            let end = tuple.find(')').expect("a tuple's end");
            let placeholders: Vec<&str> = tuple[..end].split(", ").collect();
            assert_eq!(placeholders.len(), columns, "{sql}");
            for p in placeholders {
                assert_eq!(p, format!("${next}"), "{sql}");
                next += 1;
            }
            rest = tuple[end + 1..].trim_start_matches(", ");
        }
        let bound = statement.values.map_or(0, |v| v.0.len());
        assert_eq!(bound, next - 1, "one value a placeholder: {sql}");
    }

    fn rescored(id: &str) -> Rescored {
        Rescored {
            customer_id: id.to_owned(),
            state: CustomerState {
                score: Some(50.0),
                ..CustomerState::default()
            },
            snapshot: Some(NewSnapshot::of(Snapshot {
                customer_id: id.to_owned(),
                score: 50.0,
                band: rapport_domain::scorecard::Band::Red,
                tier: None,
                scorecard_version: "v".to_owned(),
                measures: Vec::new(),
                computed_at: 1,
                outlook: None,
                detail: Default::default(),
            })),
            notification: None,
        }
    }

    #[test]
    fn every_row_lines_up_with_its_columns() {
        let rows = [rescored("a"), rescored("b"), rescored("c")];
        let rows: Vec<&Rescored> = rows.iter().collect();
        let pg = DbBackend::Postgres;
        aligned(upsert_customers(pg, "t", &rows).unwrap().unwrap());
        aligned(upsert_scores(pg, "t", &rows, Columns::All).unwrap());
        aligned(upsert_scores(pg, "t", &rows, Columns::Score).unwrap());
        aligned(insert_snapshots(pg, "t", &rows).unwrap());
    }
}
