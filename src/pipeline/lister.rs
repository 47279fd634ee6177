//! The lister of one blob source: one pass over the container per poll, planning every listed
//! blob against its checkpoint and queuing the work for the tenant's workers.
//!
//! Two ways to list (`listing` in the source's config):
//! - **flat**: the whole prefix, page by page. In the daemon the marker after each page is kept in
//!   the state store, so a restart during a pass over a huge container continues where it stopped
//!   (what it skipped is picked up by the next pass, which starts from the beginning again).
//! - **date-partitioned** (Azure Monitor archives): per resource root only the days that still
//!   have open hours (see `source::partitions`); a directory walk for new roots every
//!   `partition_discovery_interval`; the whole container every `full_listing_interval`.
//!
//! Memory is one listing page plus one small entry per root, whatever the container's size.
//!
//! Owns: which List Blobs calls a poll makes, and the listing cursor. Must not: ship, commit
//! checkpoints or change the tenant's state (errors go back to the poll cycle).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::blob_api::{BlobItem, BlobKind};
use crate::config::ListingMode;
use crate::source::partitions::{
    is_year_prefix, prefixes_for_root, ListingCursor, OpenHours, PassKind,
};
use crate::state::{CheckpointStore, ObjectKey};

use super::ship::{ShipError, Shipped, SourceContext};
use super::tenant::{defer_for_batch_age, SourceRuntime};
use super::work::{plan, Plan, WorkItem};

/// How deep the directory walk goes looking for `y=` levels.
const MAX_WALK_DEPTH: usize = 16;

/// What a worker sends back when a job is done.
pub type Done = (Arc<SourceContext>, WorkItem, Result<Shipped, ShipError>);

/// One unit of work for the tenant's workers.
pub struct Job {
    /// The source it belongs to.
    pub ctx: Arc<SourceContext>,
    /// What to ship.
    pub item: WorkItem,
    /// Where the result goes.
    pub done: flume::Sender<Done>,
}

/// What one pass did, for status and lag.
#[derive(Debug, Clone, Default)]
pub struct ListingReport {
    /// Unix seconds of the oldest data left waiting for a batch (deferred tails).
    pub oldest_deferred: Option<i64>,
    /// True when a deferred tail's time was only assumed (see `SourceStatus::behind_since_assumed`).
    pub deferred_since_assumed: bool,
    /// List Blobs calls made.
    pub requests: u64,
    /// Date-partitioned: roots known after the pass, and the oldest open hour among them.
    pub partitions: Option<(usize, Option<i64>)>,
}

/// What the lister did with one listed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Filtered out, or nothing new in it.
    Nothing,
    /// Work queued, or deferred to fill a batch: the blob is not done.
    Pending,
    /// The workers' queue is closed: the tenant stops.
    Stopped,
}

/// One pass of one source.
pub struct SourceLister<'a> {
    tenant: &'a str,
    source: &'a SourceRuntime,
    store: &'a dyn CheckpointStore,
    work_tx: &'a flume::Sender<Job>,
    done_tx: flume::Sender<Done>,
    drain: &'a CancellationToken,
    once: bool,
    now: i64,
    /// Pages of flat listings in this pass.
    pages: u64,
    report: ListingReport,
}

impl<'a> SourceLister<'a> {
    /// A pass at `now` (unix seconds); `once` ships deferred tails at once and lists flat sources
    /// from the start.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tenant: &'a str,
        source: &'a SourceRuntime,
        store: &'a dyn CheckpointStore,
        work_tx: &'a flume::Sender<Job>,
        done_tx: flume::Sender<Done>,
        drain: &'a CancellationToken,
        once: bool,
        now: i64,
    ) -> SourceLister<'a> {
        SourceLister {
            tenant,
            source,
            store,
            work_tx,
            done_tx,
            drain,
            once,
            now,
            pages: 0,
            report: ListingReport::default(),
        }
    }

    fn cfg(&self) -> &crate::config::BlobSourceConfig {
        &self.source.ctx.cfg
    }

    /// Lists once and queues what is new. Returns when everything is queued (not shipped).
    pub async fn run(mut self) -> Result<ListingReport, ShipError> {
        let mode = self.cfg().listing.resolve(&self.cfg().container);
        match mode {
            ListingMode::DatePartitioned => {
                let auto = self.cfg().listing == ListingMode::Auto;
                self.partitioned_pass(auto).await?
            }
            _ => self.flat_pass().await?,
        }
        Ok(self.report)
    }

    fn stopping(&self) -> bool {
        self.drain.is_cancelled() || self.work_tx.is_disconnected()
    }

    fn load_cursor(&self) -> Result<ListingCursor, ShipError> {
        let text = self.store.load_cursor(self.tenant, &self.cfg().name)?;
        Ok(text
            .as_deref()
            .and_then(ListingCursor::parse)
            .unwrap_or_default())
    }

    fn save_cursor(&self, cursor: &ListingCursor) -> Result<(), ShipError> {
        self.store
            .save_cursor(self.tenant, &self.cfg().name, &cursor.to_text())?;
        Ok(())
    }

    async fn page(
        &mut self,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        marker: Option<&str>,
    ) -> Result<crate::blob_api::ListPage, ShipError> {
        self.report.requests += 1;
        tracing::debug!(tenant = %self.tenant, source = %self.cfg().name, prefix = prefix.unwrap_or(""), delimiter = delimiter.unwrap_or(""), "List Blobs");
        Ok(self
            .source
            .ctx
            .reader
            .list_page_in(
                prefix,
                delimiter,
                marker,
                self.cfg().list_page_size.clamp(1, 5000),
            )
            .await?)
    }

    /// Plans one listed blob against its checkpoint and queues the work.
    async fn offer(&mut self, blob: &BlobItem) -> Result<Offer, ShipError> {
        if !self.source.filter.accepts(&blob.name) {
            return Ok(Offer::Nothing);
        }
        let key = ObjectKey::new(self.tenant, &self.cfg().name, &blob.name);
        let prior = self.store.load(&key)?;
        // only an append blob's last line can wait (and only it needs its write time here)
        let written = (blob.kind == Some(BlobKind::Append))
            .then(|| last_modified(blob))
            .flatten();
        let quiet = written.is_some_and(|t| {
            self.now.saturating_sub(t) >= self.cfg().partial_line_wait.get().as_secs() as i64
        });
        let item = match plan(blob, prior, quiet, self.cfg().decrypt.is_some(), self.now) {
            Plan::Ship(item) => *item,
            Plan::Nothing => return Ok(Offer::Nothing),
            Plan::PartialLineWaits => {
                // data seen and not shipped: it counts in the lag, and the blob is not done
                // (its hour stays open) until the line ends or the blob turns quiet
                let since = written.unwrap_or(self.now);
                self.report.oldest_deferred =
                    Some(self.report.oldest_deferred.map_or(since, |o| o.min(since)));
                return Ok(Offer::Pending);
            }
        };
        if !self.once && defer_for_batch_age(&item, self.cfg(), self.now) {
            // a growing blob shipped recently: its new lines wait to fill a batch (up to
            // batch_max_age), so objects are not one per poll
            // its new bytes were written after the poll that shipped up to its checkpoint began;
            // a checkpoint that does not say when (written before schema 3) gives its commit
            // time, good enough for the lag but not a time a watermark may claim
            let prior = item.prior.as_ref().map(|p| &p.value);
            let since = match prior.and_then(|p| p.seen_at) {
                Some(seen) => seen,
                None => {
                    self.report.deferred_since_assumed = true;
                    prior.map_or(0, |p| p.last_shipped_at)
                }
            };
            self.report.oldest_deferred =
                Some(self.report.oldest_deferred.map_or(since, |o| o.min(since)));
            return Ok(Offer::Pending);
        }
        let job = Job {
            ctx: self.source.ctx.clone(),
            item,
            done: self.done_tx.clone(),
        };
        if self.work_tx.send_async(job).await.is_err() {
            return Ok(Offer::Stopped);
        }
        Ok(Offer::Pending)
    }

    /// Lists `prefix` flat from `marker`, offering every blob; `open` (if any) learns what was
    /// seen; `on_page` gets the marker after each page. True when the listing reached its end.
    async fn list_flat(
        &mut self,
        prefix: Option<&str>,
        mut marker: Option<String>,
        mut open: Option<&mut OpenHours>,
        save_marker: bool,
    ) -> Result<bool, ShipError> {
        loop {
            if self.stopping() {
                return Ok(false);
            }
            let page = self.page(prefix, None, marker.as_deref()).await?;
            self.pages += 1;
            for blob in &page.blobs {
                match self.offer(blob).await? {
                    Offer::Stopped => return Ok(false),
                    offer => {
                        if let Some(open) = open.as_deref_mut() {
                            open.observe(&blob.name, offer == Offer::Pending, last_modified(blob));
                        }
                    }
                }
                if self.drain.is_cancelled() {
                    return Ok(false);
                }
            }
            let had_marker = marker.is_some();
            marker = page.next_marker;
            if save_marker && (had_marker || marker.is_some()) {
                self.save_cursor(&ListingCursor {
                    flat_marker: marker.clone(),
                    ..ListingCursor::default()
                })?;
            }
            if marker.is_none() {
                return Ok(true);
            }
        }
    }

    /// Flat: the whole prefix; the daemon resumes an interrupted pass at its saved marker.
    async fn flat_pass(&mut self) -> Result<(), ShipError> {
        let resume = if self.once {
            None
        } else {
            self.load_cursor()?.flat_marker
        };
        if let Some(m) = &resume {
            tracing::debug!(tenant = %self.tenant, source = %self.cfg().name, marker = %m, "Listing resumes where the last pass stopped");
        }
        let prefix = self.source.prefix.clone();
        self.list_flat(prefix.as_deref(), resume, None, !self.once)
            .await?;
        Ok(())
    }

    /// Date-partitioned: a full pass when one is due, else the open days of every known root.
    /// `--once` always lists everything (it promises to ship what is there). With `auto`, every
    /// pass is a full one until [`ListingCursor::partitions_pay_off`].
    async fn partitioned_pass(&mut self, auto: bool) -> Result<(), ShipError> {
        let mut cursor = self.load_cursor()?;
        let loaded = cursor.clone();
        if self.once || (auto && !cursor.partitions_pay_off()) {
            cursor.last_full = None;
        }
        let cfg = self.cfg();
        let settle = cfg.partition_settle.get().as_secs() as i64;
        let full_every = cfg.full_listing_interval.get().as_secs() as i64;
        let discover_every = cfg.partition_discovery_interval.get().as_secs() as i64;
        let prefix = self.source.prefix.clone().unwrap_or_default();
        match cursor.next_pass(self.now, full_every, discover_every) {
            PassKind::Full => {
                let mut open = OpenHours::new(self.now, settle);
                let done = self
                    .list_flat(Some(&prefix), None, Some(&mut open), false)
                    .await?;
                if done {
                    cursor.outside_layout = open.outside_layout;
                    cursor.full_pages = self.pages;
                    cursor.roots = open.into_roots();
                    cursor.last_full = Some(self.now);
                    cursor.last_discovery = Some(self.now);
                    cursor.flat_marker = None;
                    // listed whole every poll while it stays so: no write per poll
                    let unchanged_flat = auto
                        && !loaded.partitions_pay_off()
                        && !cursor.partitions_pay_off()
                        && loaded.roots == cursor.roots
                        && loaded.outside_layout == cursor.outside_layout;
                    if !unchanged_flat {
                        self.save_cursor(&cursor)?;
                    }
                    tracing::debug!(tenant = %self.tenant, source = %self.cfg().name, roots = cursor.roots.len(), "Full listing done");
                }
            }
            PassKind::Partitions { discover } => {
                let before = cursor.clone();
                if discover {
                    if let Some(found) = self.walk_for_roots(&prefix).await? {
                        for root in found {
                            cursor.roots.entry(root).or_insert(None);
                        }
                        cursor.last_discovery = Some(self.now);
                    }
                }
                let roots: Vec<(String, Option<i64>)> =
                    cursor.roots.iter().map(|(r, o)| (r.clone(), *o)).collect();
                for (root, open_from) in roots {
                    if self.stopping() {
                        break;
                    }
                    let mut open = OpenHours::new(self.now, settle);
                    open.saw_root(&root);
                    let mut complete = true;
                    for p in within_source(prefixes_for_root(&root, open_from, self.now), &prefix) {
                        if !self
                            .list_flat(Some(&p), None, Some(&mut open), false)
                            .await?
                        {
                            complete = false;
                            break;
                        }
                    }
                    if complete {
                        cursor.roots.insert(root.clone(), open.first_open(&root));
                    }
                }
                if cursor != before {
                    self.save_cursor(&cursor)?;
                }
            }
        }
        if !auto || cursor.partitions_pay_off() {
            self.report.partitions = Some((cursor.roots.len(), cursor.oldest_open_hour()));
        }
        Ok(())
    }

    /// Walks the directory tree under `prefix` (delimiter `/`) and returns every directory that
    /// holds `y=YYYY/` directories; blobs met on the way are offered. None when interrupted.
    async fn walk_for_roots(&mut self, prefix: &str) -> Result<Option<Vec<String>>, ShipError> {
        let mut roots = Vec::new();
        let mut stack = vec![(prefix.to_string(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let mut marker: Option<String> = None;
            loop {
                if self.stopping() {
                    return Ok(None);
                }
                let page = self.page(Some(&dir), Some("/"), marker.as_deref()).await?;
                for blob in &page.blobs {
                    if self.offer(blob).await? == Offer::Stopped {
                        return Ok(None);
                    }
                }
                for p in page.prefixes {
                    if is_year_prefix(&dir, &p) {
                        if roots.last() != Some(&dir) {
                            roots.push(dir.clone());
                        }
                    } else if depth < MAX_WALK_DEPTH && p.len() > dir.len() {
                        stack.push((p, depth + 1));
                    }
                }
                marker = page.next_marker;
                if marker.is_none() {
                    break;
                }
            }
        }
        tracing::debug!(tenant = %self.tenant, source = %self.cfg().name, roots = roots.len(), "Directory walk done");
        Ok(Some(roots))
    }
}

/// `Last-Modified` of a listed blob, in unix seconds.
fn last_modified(blob: &BlobItem) -> Option<i64> {
    super::work::http_time(blob.last_modified.as_deref())
}

/// The listing prefixes that stay inside the source's own `prefix`: a partition prefix under it
/// as is, one above it narrowed to it, others dropped (deduplicated, order kept).
fn within_source(prefixes: Vec<String>, source_prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        let p = if p.starts_with(source_prefix) {
            p
        } else if source_prefix.starts_with(&p) {
            source_prefix.to_string()
        } else {
            continue;
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_prefixes_never_leave_the_source_prefix() {
        let days = vec![
            "r/y=2026/m=11/d=26/".to_string(),
            "r/y=2026/m=11/d=27/".to_string(),
        ];
        assert_eq!(within_source(days.clone(), ""), days);
        assert_eq!(within_source(days.clone(), "r/"), days);
        assert_eq!(
            within_source(days.clone(), "r/y=2026/m=11/d=27/h=1"),
            vec!["r/y=2026/m=11/d=27/h=1"]
        );
        assert!(within_source(days, "q/").is_empty());
        assert_eq!(
            within_source(vec!["r/".into()], "r/y=2026/"),
            vec!["r/y=2026/"]
        );
    }

    #[test]
    fn last_modified_parses_rfc1123() {
        let b = BlobItem {
            last_modified: Some("Fri, 27 Nov 2026 13:00:00 GMT".into()),
            ..BlobItem::default()
        };
        assert_eq!(last_modified(&b), Some(1_795_784_400));
        assert_eq!(last_modified(&BlobItem::default()), None);
    }
}
