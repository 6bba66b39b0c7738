//! Where a benchmark's time goes between two points of a run: CPU seconds per process, rows
//! written per table, and the statements PostgreSQL spent its time on (when the cluster
//! counts them: `Postgres::start_observed`).

use rapport_storage::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `/proc`'s clock ticks a second (USER_HZ, 100 on every Linux the kernel ABI allows).
const TICKS: f64 = 100.0;

/// A process to profile: its name, its pid, and whether its children's time is its own (a
/// PostgreSQL backend is a child of the postmaster; the benchmark's children are the services,
/// profiled each on its own).
pub struct Process {
    pub name: String,
    pub pid: u32,
    pub children: bool,
}

/// CPU seconds `p` has used (with its children's, reaped or alive, when they are its own).
pub fn cpu_seconds(p: &Process) -> f64 {
    let Some(own) = stat(p.pid) else {
        return 0.0;
    };
    if !p.children {
        return own.own as f64 / TICKS;
    }
    let mut ticks = own.own + own.reaped;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(f) = stat(child).filter(|f| f.parent == p.pid) {
                ticks += f.own + f.reaped;
            }
        }
    }
    ticks as f64 / TICKS
}

/// The fields of `/proc/PID/stat` a profile reads.
struct Stat {
    parent: u32,
    own: u64,
    reaped: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        parent: u32::try_from(field(1)?).ok()?,
        own: field(11)? + field(12)?,
        reaped: field(13)? + field(14)?,
    })
}

/// What a profile reads at each end of a span.
pub struct Mark {
    cpu: Vec<(String, f64)>,
    tables: BTreeMap<String, [i64; 6]>,
    /// PostgreSQL's write-ahead log position, in bytes.
    wal: i64,
}

/// Reads the processes' CPU, the tables' write counters and the write-ahead log's position
/// (cluster-wide: autovacuum's writes count too) now.
pub async fn mark(db: &DatabaseConnection, processes: &[Process]) -> anyhow::Result<Mark> {
    // Counters reach the statistics views when a backend reports them (at most a second late).
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT relname::text AS t, n_tup_ins AS i, n_tup_upd AS u, n_tup_hot_upd AS h, \
             n_tup_del AS d, seq_tup_read AS s, coalesce(idx_tup_fetch, 0) AS x \
             FROM pg_stat_user_tables",
        ))
        .await?;
    let mut tables = BTreeMap::new();
    for r in rows {
        let name: String = r.try_get("", "t")?;
        let counts = [
            r.try_get("", "i")?,
            r.try_get("", "u")?,
            r.try_get("", "h")?,
            r.try_get("", "d")?,
            r.try_get("", "s")?,
            r.try_get("", "x")?,
        ];
        tables.insert(name, counts);
    }
    let cpu = processes
        .iter()
        .map(|p| (p.name.clone(), cpu_seconds(p)))
        .collect();
    let wal = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS w",
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "w"))
        .transpose()?
        .unwrap_or_default();
    Ok(Mark { cpu, tables, wal })
}

/// Forgets the statements counted so far, so the next report covers what follows.
pub async fn reset_statements(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT pg_stat_statements_reset()",
    ))
    .await?;
    Ok(())
}

/// The span from `start` to now over `events` events: CPU per process (seconds, and cores
/// over `secs`), write-ahead log bytes and rows per event per table, and the statements
/// taking most of PostgreSQL's time (calls per event, mean milliseconds, WAL bytes per event,
/// share of the total; the statistics need PostgreSQL 13 or later).
pub async fn report(
    db: &DatabaseConnection,
    processes: &[Process],
    start: &Mark,
    secs: f64,
    events: f64,
) -> anyhow::Result<String> {
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let end = mark(db, processes).await?;
    let mut out = String::new();
    writeln!(out, "CPU over {secs:.0} s ({events:.0} events):")?;
    for ((name, before), (_, after)) in start.cpu.iter().zip(&end.cpu) {
        let used = after - before;
        writeln!(out, "  {name:<14} {used:8.1} s  {:5.2} cores", used / secs)?;
    }
    writeln!(
        out,
        "bytes of write-ahead log per event: {:.0}",
        (end.wal - start.wal) as f64 / events
    )?;
    writeln!(
        out,
        "rows per event (inserted, updated, of which in place, deleted; read by scans, by index):"
    )?;
    for (table, after) in &end.tables {
        let before = start.tables.get(table).copied().unwrap_or_default();
        let d: Vec<f64> = (0..6)
            .map(|i| (after[i] - before[i]) as f64 / events)
            .collect();
        if d.iter().all(|x| *x == 0.0) {
            continue;
        }
        writeln!(
            out,
            "  {table:<24} {:6.3} {:6.3} {:6.3} {:6.3}; {:8.2} {:6.2}",
            d[0], d[1], d[2], d[3], d[4], d[5]
        )?;
    }
    let statements = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT calls::float8 AS c, total_exec_time AS t, rows::float8 AS r, \
             regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS q, \
             sum(total_exec_time) OVER () AS all_t, shared_blks_hit::float8 AS b, \
             wal_bytes::float8 AS w \
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15",
        ))
        .await;
    // A cluster that does not count statements has no such view: the rest stands.
    if let Ok(statements) = statements {
        writeln!(
            out,
            "statements by PostgreSQL time (calls/event, mean ms, rows/call, pages/call, WAL bytes/event, share):"
        )?;
        for s in statements {
            let (calls, total, rows): (f64, f64, f64) = (
                s.try_get("", "c")?,
                s.try_get("", "t")?,
                s.try_get("", "r")?,
            );
            let all: f64 = s.try_get("", "all_t")?;
            let pages: f64 = s.try_get("", "b")?;
            let wal: f64 = s.try_get("", "w")?;
            let query: String = s.try_get("", "q")?;
            writeln!(
                out,
                "  {:7.3} {:7.3} {:7.1} {:8.1} {:7.0} {:5.1}%  {query}",
                calls / events,
                total / calls.max(1.0),
                rows / calls.max(1.0),
                pages / calls.max(1.0),
                wal / events,
                100.0 * total / all.max(f64::MIN_POSITIVE)
            )?;
        }
    }
    Ok(out)
}
