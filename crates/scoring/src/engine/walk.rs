//! Whole-tenant work: re-scoring every customer in pipelined pages, the percentile tables
//! it refreshes, and fitting the customer-base models.

use super::*;

/// Customers per page when walking a whole tenant.
pub(super) const PAGE: u64 = 5_000;

/// Pages a whole-tenant walk writes at once, each in its own transaction: on two cores one
/// write waits on the database while the other encodes.
pub(super) const WRITERS: usize = 2;

/// About how many customers a percentile pre-pass reads: the tables of a larger tenant are
/// estimated from a sample of this size, whose quantiles are within a fraction of a
/// percentile of the population's (the tables keep whole percentiles).
pub(super) const POPULATION_SAMPLE: u64 = 100_000;

/// What `fit_models` did.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    pub bgnbd: FitRecord,
    pub gamma_gamma: FitRecord,
    pub rescored: u64,
}

/// Progress of a whole-tenant re-score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub changed: u64,
}

impl Engine {
    /// Reads the tenant's customers (about one in `one_in` of them) page by page in a task of
    /// its own, a page ahead of whoever receives them.
    pub(super) fn read_ahead(
        &self,
        tenant: &str,
        one_in: u64,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::Receiver<Result<Vec<FeatureRow>, StoreError>>,
    ) {
        let (pages_tx, pages_rx) = tokio::sync::mpsc::channel(2);
        let (store, tenant) = (self.store.clone(), tenant.to_owned());
        let reader = tokio::spawn(async move {
            let mut pages = store.sample(&tenant, PAGE, one_in);
            loop {
                let page = pages.next().await.transpose();
                let end = !matches!(page, Some(Ok(_)));
                if let Some(page) = page
                    && pages_tx.send(page).await.is_err()
                {
                    return;
                }
                if end {
                    return;
                }
            }
        });
        (reader, pages_rx)
    }

    /// Computes and stores the tenant's percentile tables from the values of its `customers`
    /// (of a sample of them, in a large tenant).
    pub(super) async fn refresh_population(
        &self,
        tenant: &str,
        ctx: &Arc<TenantContext>,
        customers: u64,
    ) -> Result<Population, ScoringError> {
        let now = self.clock.now();
        let mut values = Values::new(ctx);
        let mut walked = 0u64;
        let one_in = customers / POPULATION_SAMPLE;
        let (reader, mut pages) = self.read_ahead(tenant, one_in);
        while let Some(page) = pages.recv().await {
            let page = page?;
            walked += page.len() as u64;
            let evaluating = ctx.clone();
            // The values travel to the evaluating thread and back: no copy of them per page.
            values = tokio::task::spawn_blocking(move || {
                for row in &page {
                    values.add(percentile_values(&row.state, &evaluating, now));
                }
                values
            })
            .await
            .map_err(|e| ScoringError::Internal(format!("evaluation task: {e}")))?;
        }
        reader
            .await
            .map_err(|e| ScoringError::Internal(format!("read task: {e}")))?;
        tracing::debug!(tenant, customers, walked, "percentile tables estimated");
        // The tables stand for every customer, whether or not all of them were read.
        values.save(self, tenant, customers, now).await
    }

    /// Fits BG/NBD and Gamma-Gamma on every customer's purchase days up to `end` (in days),
    /// stores both fits, and re-scores every customer with them.
    pub async fn fit_models(
        &self,
        tenant: &str,
        end: DateTime<Utc>,
    ) -> Result<FitOutcome, ScoringError> {
        let mut summaries = Vec::new();
        let mut pages = self.store.pages(tenant, PAGE);
        while let Some(page) = pages.next().await? {
            summaries.extend(page.iter().filter_map(|row| {
                summarise_days(&row.state.metrics.purchase_days, end.date_naive(), 1.0)
            }));
        }
        let customers: Vec<Customer> = summaries.iter().map(|s| s.customer).collect();
        let spends: Vec<Spend> = summaries.iter().map(|s| s.spend()).collect();
        // Too small a population fits nothing meaningful: both models report why.
        let enough = check_population(&customers);
        let bgnbd = enough.clone().and_then(|()| BgNbd::fit(&customers));
        let gamma_gamma = enough.and_then(|()| GammaGamma::fit(&spends));
        let (end_ms, fitted_at) = (end.timestamp_millis(), self.clock.now().timestamp_millis());
        let bg_record = FitRecord::of(&bgnbd, customers.len(), end_ms, fitted_at);
        let gg_record = FitRecord::of(&gamma_gamma, customers.len(), end_ms, fitted_at);
        self.store.save_fit(tenant, &bg_record).await?;
        self.store.save_fit(tenant, &gg_record).await?;
        // A failed fit keeps the tenant's previous models in use.
        self.forget_context(tenant).await;
        let rescored = self.rescore_all(tenant, |_| {}).await?.done;
        tracing::info!(tenant, customers = customers.len(), bgnbd = ?bg_record.error, gamma_gamma = ?gg_record.error, rescored, "models fitted");
        Ok(FitOutcome {
            bgnbd: bg_record,
            gamma_gamma: gg_record,
            rescored,
        })
    }

    /// Rebuilds the tenant's percentile tables, then re-scores every customer from stored
    /// metrics at the clock's time, storing and caching only changed scores. `progress` hears
    /// after every page.
    pub async fn rescore_all(
        &self,
        tenant: &str,
        mut progress: impl FnMut(Progress),
    ) -> Result<Progress, ScoringError> {
        // One at a time in this process, and across replicas: two walks of one tenant would
        // each do all the work, and the second store nothing new.
        let _one_at_a_time = self.rescoring.lock().await;
        let across_replicas = self
            .store
            .exclusive(&format!("scoring_rescore\u{1f}{tenant}"))
            .await?;
        // What the walk scores with is read now, not taken from a copy up to
        // `CONTEXT_TTL` old: a scorecard set through another replica just before counts.
        self.forget_context(tenant).await;
        let mut p = Progress {
            total: self.store.customer_count(tenant).await?,
            ..Progress::default()
        };
        self.store.refresh_statistics(p.total).await?;
        let mut ctx = self.context(tenant).await?;
        let now = self.clock.now();
        // Percentiles rank a customer among the tenant. Tables made over fewer than 90 % of
        // today's customers are rebuilt first, in a pass that only reads (a sample, in a large
        // tenant); otherwise this walk ranks by the last tables. Either way it refreshes them
        // from the values of everyone it walks.
        let percentiles = !ctx.percentile_keys().is_empty();
        if percentiles && ctx.population_of * 10 < p.total * 9 {
            let population = self.refresh_population(tenant, &ctx, p.total).await?;
            ctx = Arc::new(TenantContext {
                population,
                population_of: p.total,
                ..(*ctx).clone()
            });
        }
        let mut values = Values::new(&ctx);
        let mut summary = Summary::default();
        // Three stages overlap: the next page is read while this one is evaluated (on a
        // blocking thread) and the previous ones are written.
        let (reader, mut pages_rx) = self.read_ahead(tenant, 1);
        let mut writing = VecDeque::<tokio::task::JoinHandle<Result<(), ScoringError>>>::new();
        let traceparent = rapport_telemetry::current_traceparent();
        while let Some(page) = pages_rx.recv().await {
            let page = page?;
            p.done += page.len() as u64;
            let evaluating = ctx.clone();
            let (changed, gathered, noted) = tokio::task::spawn_blocking(move || {
                let mut changed = Vec::with_capacity(page.len());
                for row in page {
                    let (r, scored, seen) = rescore(row.customer_id, row.state, &evaluating, now);
                    values.add_scored(&scored);
                    summary.add(&r.customer_id, &seen);
                    if r.notification.is_some() {
                        changed.push(r);
                    }
                }
                (changed, values, summary)
            })
            .await
            .map_err(|e| ScoringError::Internal(format!("evaluation task: {e}")))?;
            values = gathered;
            summary = noted;
            p.changed += changed.len() as u64;
            if writing.len() >= WRITERS
                && let Some(oldest) = writing.pop_front()
            {
                oldest
                    .await
                    .map_err(|e| ScoringError::Internal(format!("write task: {e}")))??;
            }

            let (writer, t, trace) = (self.writer(), tenant.to_owned(), traceparent.clone());
            // A customer written meanwhile was scored by whoever wrote it.
            writing.push_back(tokio::spawn(async move {
                writer
                    .persist(&t, changed, Columns::Score, trace)
                    .await
                    .map(drop)
            }));
            progress(p);
        }
        for last in writing {
            last.await
                .map_err(|e| ScoringError::Internal(format!("write task: {e}")))??;
        }
        reader
            .await
            .map_err(|e| ScoringError::Internal(format!("read task: {e}")))?;
        if percentiles {
            values.save(self, tenant, p.done, now).await?;
        }
        let (bands, falls) = summary.finish();
        self.store
            .save_walk_summary(
                tenant,
                now.timestamp().div_euclid(86_400),
                bands,
                &falls,
                now.timestamp_millis(),
            )
            .await?;
        self.forget_context(tenant).await;
        across_replicas.release().await.map_err(StoreError::from)?;
        tracing::info!(
            tenant,
            customers = p.done,
            changed = p.changed,
            "rescored all"
        );
        Ok(p)
    }
}

impl Engine {
    /// The tenant's band counts of the last `weeks` weeks (this one included): the last
    /// count of each week, oldest first, each with the Monday (days since the epoch) that
    /// starts its week.
    pub async fn band_shares(
        &self,
        tenant: &str,
        weeks: u32,
    ) -> Result<Vec<(i64, crate::store::DayCounts)>, ScoringError> {
        let today = self.clock.now().timestamp().div_euclid(86_400);
        let from = monday(today) - 7 * (i64::from(weeks.max(1)) - 1);
        let mut out: Vec<(i64, crate::store::DayCounts)> = Vec::new();
        for day in self.store.band_counts(tenant, from).await? {
            let week = monday(day.day);
            match out.last_mut() {
                Some((w, last)) if *w == week => *last = day,
                _ => out.push((week, day)),
            }
        }
        Ok(out)
    }

    /// The last walk's steepest falls over `days`, with the customers' scores now, and when
    /// the walk found them.
    pub async fn fallers(
        &self,
        tenant: &str,
        days: i32,
        limit: u32,
    ) -> Result<(Vec<(pb::HealthScore, f64)>, Option<i64>), ScoringError> {
        let (falls, at) = self.store.fallers(tenant, days, u64::from(limit)).await?;
        let ids: Vec<String> = falls.iter().map(|f| f.customer_id.clone()).collect();
        let mut now: HashMap<String, pb::HealthScore> = self
            .health(tenant, &ids)
            .await?
            .into_iter()
            .map(|h| (h.customer_id.clone(), h))
            .collect();
        Ok((
            falls
                .into_iter()
                .filter_map(|f| Some((now.remove(&f.customer_id)?, f.change)))
                .collect(),
            at,
        ))
    }
}

/// The Monday starting the week of `day` (days since the epoch, a Thursday).
pub fn monday(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// The windows (days) over which a walk notes the steepest falls.
pub const FALL_WINDOWS: [i32; 2] = [7, 30];
/// Steepest falls kept per window.
pub const FALLERS_KEPT: usize = 100;

/// What a walk notes of everyone: how many are in each band, and the steepest falls.
#[derive(Debug, Default)]
pub(super) struct Summary {
    bands: crate::store::BandCounts,
    falls: [Vec<crate::store::Fall>; 2],
}

impl Summary {
    fn add(&mut self, customer_id: &str, seen: &Seen) {
        self.bands.add(seen.band);
        for (falls, change) in self.falls.iter_mut().zip([seen.trend_7d, seen.trend_30d]) {
            let Some(change) = change.filter(|c| *c < 0.0) else {
                continue;
            };
            falls.push(crate::store::Fall {
                customer_id: customer_id.to_owned(),
                change,
            });
            // Keep memory bounded on a large tenant: cut back to the steepest now and then.
            if falls.len() >= 4 * FALLERS_KEPT {
                steepest(falls);
            }
        }
    }

    /// The band counts, and the steepest falls of each window, steepest first.
    fn finish(
        mut self,
    ) -> (
        crate::store::BandCounts,
        Vec<(i32, Vec<crate::store::Fall>)>,
    ) {
        for falls in &mut self.falls {
            steepest(falls);
        }
        let [week, month] = self.falls;
        (
            self.bands,
            vec![(FALL_WINDOWS[0], week), (FALL_WINDOWS[1], month)],
        )
    }
}

/// Keeps the [`FALLERS_KEPT`] steepest falls, steepest first (ties by id).
fn steepest(falls: &mut Vec<crate::store::Fall>) {
    falls.sort_by(|a, b| {
        a.change
            .total_cmp(&b.change)
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    falls.truncate(FALLERS_KEPT);
}

/// Raw values per percentile measure, gathered during a whole-tenant walk.
pub(super) struct Values {
    by_key: BTreeMap<String, Vec<f64>>,
}

impl Values {
    fn new(ctx: &TenantContext) -> Values {
        Values {
            by_key: ctx
                .percentile_keys()
                .into_iter()
                .map(|k| (k, Vec::new()))
                .collect(),
        }
    }

    fn add<'k>(&mut self, found: impl IntoIterator<Item = (&'k str, f64)>) {
        for (key, v) in found {
            if let Some(values) = self.by_key.get_mut(key) {
                values.push(v);
            }
        }
    }

    /// Adds the raw values of a scored customer.
    fn add_scored(&mut self, scored: &HealthScore) {
        self.add(
            scored
                .measures
                .iter()
                .filter_map(|m| Some((m.key.as_str(), m.value?))),
        );
    }

    /// Stores the tables of the gathered values and returns them.
    async fn save(
        self,
        engine: &Engine,
        tenant: &str,
        walked: u64,
        now: DateTime<Utc>,
    ) -> Result<Population, ScoringError> {
        let tables: Vec<(String, PercentileTable, u64)> = self
            .by_key
            .into_iter()
            .map(|(key, values)| {
                let table = PercentileTable::from_values(values).unwrap_or_default();
                (key, table, walked)
            })
            .collect();
        // A tenant without customers yet keeps no tables: its first whole-tenant re-score
        // makes them.
        if walked > 0 {
            engine
                .store
                .save_population(tenant, &tables, now.timestamp_millis())
                .await?;
        }
        Ok(tables.into_iter().map(|(k, t, _)| (k, t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_domain::scorecard::Band;

    #[test]
    fn a_walk_counts_everyone_and_keeps_only_the_steepest_falls() {
        let mut s = Summary::default();
        for i in 0..1_000 {
            let seen = Seen {
                band: (i % 2 == 0).then_some(Band::Red),
                trend_7d: Some(-(i as f64)),
                trend_30d: Some(i as f64),
            };
            s.add(&format!("c{i:04}"), &seen);
        }
        let (bands, falls) = s.finish();
        assert_eq!((bands.red, bands.unscored, bands.green), (500, 500, 0));
        assert_eq!(falls[0].0, 7);
        let week = &falls[0].1;
        assert_eq!(week.len(), FALLERS_KEPT);
        assert_eq!(
            (week[0].customer_id.as_str(), week[0].change),
            ("c0999", -999.0)
        );
        assert_eq!(week[FALLERS_KEPT - 1].change, -900.0);
        assert!(falls[1].1.is_empty(), "rises are not falls");
    }

    #[test]
    fn weeks_start_on_monday() {
        // 1970-01-01 was a Thursday; 1970-01-05 a Monday.
        assert_eq!(monday(0), -3);
        assert_eq!(monday(4), 4);
        assert_eq!(monday(10), 4);
        assert_eq!(monday(11), 11);
    }
}
