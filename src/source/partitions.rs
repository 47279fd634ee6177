//! The date-partitioned layout of Azure Monitor archives, and where listing resumes.
//!
//! Azure Monitor writes diagnostic logs to `insights-logs-<category>` containers as
//! `resourceId=/SUBSCRIPTIONS/<s>/RESOURCEGROUPS/<g>/PROVIDERS/<ns>/<type>/<name>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json`,
//! one append blob per resource and hour. Such a container only grows: after a year it holds
//! millions of blobs, of which only the last hour or two still change. Listing it whole every
//! poll costs hundreds of pages and a checkpoint look-up per blob. Instead, per *root* (the path
//! before `y=`, one per resource) Ferry keeps the first hour that is still *open*, and a poll lists
//! only the day prefixes from that hour to now.
//!
//! An hour is *closed* when it ended at least `settle` ago, every blob in it was last written at
//! least `settle` ago, and every blob in it is fully shipped (nothing planned, nothing deferred,
//! nothing failed). Writes into a closed hour (rare: Azure Monitor can append late data) are picked
//! up by the periodic full listing, and new resources by the periodic directory walk.
//!
//! Owns: parsing partition names, the per-root open hour, the persisted [`ListingCursor`] and which
//! prefixes a poll lists. Must not: call Azure, read checkpoints or decide what to ship (the
//! pipeline's lister does, and tells [`OpenHours`] what it saw).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Seconds in an hour.
const HOUR: i64 = 3600;
/// Up to this many days from the first open hour's day to now, a root is listed day by day
/// (a day is at most 24 blobs per resource: one small page each).
const MAX_DAY_PREFIXES: i64 = 3;
/// Up to this many months, month by month (at most 744 blobs a month: one page each); beyond, the
/// root is listed whole.
const MAX_MONTH_PREFIXES: i64 = 12;

/// A blob name split at its hour partition: `{root}y=YYYY/m=MM/d=DD/h=HH/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourPartition<'a> {
    /// Everything before `y=` (ends with `/`, or empty at the container's top).
    pub root: &'a str,
    /// The hour, in hours since the Unix epoch (UTC).
    pub hour: i64,
}

/// The hour partition of a blob name, or None when the name is not in the date layout.
pub fn hour_partition(name: &str) -> Option<HourPartition<'_>> {
    let mut from = 0;
    while let Some(found) = name[from..].find("y=") {
        let at = from + found;
        if at == 0 || name.as_bytes().get(at - 1) == Some(&b'/') {
            if let Some(hour) = parse_hour_path(&name[at..]) {
                return Some(HourPartition {
                    root: &name[..at],
                    hour,
                });
            }
        }
        from = at + 2;
    }
    None
}

/// `y=YYYY/m=MM/d=DD/h=HH/` at the start of `s`, as hours since the epoch.
fn parse_hour_path(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let field = |at: usize, key: &[u8], digits: usize| -> Option<i64> {
        let end = at + key.len() + digits;
        if b.get(at..at + key.len())? != key || b.get(end)? != &b'/' {
            return None;
        }
        let text = std::str::from_utf8(b.get(at + key.len()..end)?).ok()?;
        if !text.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    let year = field(0, b"y=", 4)?;
    let month = field(7, b"m=", 2)?;
    let day = field(12, b"d=", 2)?;
    let hour = field(17, b"h=", 2)?;
    if !(1..=12).contains(&month) || hour > 23 || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 24 + hour)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `{root}y=YYYY/m=MM/d=DD/` for a day since the epoch.
pub fn day_prefix(root: &str, day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{root}y={y:04}/m={m:02}/d={d:02}/")
}

/// `YYYY-MM-DDTHH` of an hour since the epoch (for status and logs).
pub fn hour_label(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}T{:02}", hour.rem_euclid(24))
}

/// True when `prefix` is `{parent}y=YYYY/`: `parent` is a partition root.
pub fn is_year_prefix(parent: &str, prefix: &str) -> bool {
    prefix
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix("y="))
        .and_then(|rest| rest.strip_suffix('/'))
        .is_some_and(|y| y.len() == 4 && y.bytes().all(|c| c.is_ascii_digit()))
}

/// The prefixes a poll lists for one root: the whole root when nothing is known of it; else the
/// days from the first open hour's day to the day of the next hour (a writer's clock slightly
/// ahead of ours still gets listed), or the months when that is more than a few days, or the whole
/// root when it is more than a year. Each prefix is usually one small page.
pub fn prefixes_for_root(root: &str, open_from: Option<i64>, now_secs: i64) -> Vec<String> {
    let Some(first) = open_from else {
        return vec![root.to_string()];
    };
    let first_day = first.div_euclid(24);
    let last_day = (now_secs.div_euclid(HOUR) + 1)
        .div_euclid(24)
        .max(first_day);
    if last_day - first_day < MAX_DAY_PREFIXES {
        return (first_day..=last_day)
            .map(|day| day_prefix(root, day))
            .collect();
    }
    let month_index = |day: i64| {
        let (y, m, _) = civil_from_days(day);
        y * 12 + (m - 1)
    };
    let (first_month, last_month) = (month_index(first_day), month_index(last_day));
    if last_month - first_month >= MAX_MONTH_PREFIXES {
        return vec![root.to_string()];
    }
    (first_month..=last_month)
        .map(|i| {
            format!(
                "{root}y={:04}/m={:02}/",
                i.div_euclid(12),
                i.rem_euclid(12) + 1
            )
        })
        .collect()
}

/// What one listing pass covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// The whole source prefix, flat: finds everything, and every root with its open hour.
    Full,
    /// Per known root, the days with open hours; first walking the directory tree for new roots
    /// when `discover`.
    Partitions {
        /// Walk the tree for roots first.
        discover: bool,
    },
}

/// Where listing of one source resumes, kept in the state store between polls and restarts
/// (as JSON, through `CheckpointStore::save_cursor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingCursor {
    /// Flat listing: the marker after the last page handed to the workers in a pass that has not
    /// finished (a restart continues there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_marker: Option<String>,
    /// Date-partitioned listing: per root, the first open hour (hours since the epoch); `None`
    /// lists the root whole.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roots: BTreeMap<String, Option<i64>>,
    /// When the last full listing finished (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full: Option<i64>,
    /// When the last directory walk finished (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery: Option<i64>,
    /// The last full listing found blobs outside the date layout (or none at all).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_layout: bool,
    /// Pages the last full listing took.
    #[serde(default)]
    pub full_pages: u64,
}

impl ListingCursor {
    /// Reads a stored cursor; a cursor that does not parse (older format, damage) is dropped, which
    /// only costs one full listing.
    pub fn parse(text: &str) -> Option<ListingCursor> {
        serde_json::from_str(text).ok()
    }

    /// The stored form.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The kind of pass due at `now` for a date-partitioned source.
    pub fn next_pass(&self, now: i64, full_every: i64, discover_every: i64) -> PassKind {
        match self.last_full {
            Some(t) if now - t < full_every => PassKind::Partitions {
                discover: self
                    .last_discovery
                    .is_none_or(|d| now - d >= discover_every),
            },
            _ => PassKind::Full,
        }
    }

    /// For `listing = "auto"`: listing by partition is worth it once the last full listing found
    /// only date-layout blobs and took more than one page. Below that, flat listing is one call
    /// per poll: nothing is cheaper, and a blob outside the layout is never left waiting for a
    /// walk. Above it, an archive container grows by one blob per resource and hour for ever, so
    /// the whole listing grows without bound while the open days per resource stay a small page.
    pub fn partitions_pay_off(&self) -> bool {
        !self.outside_layout && !self.roots.is_empty() && self.full_pages > 1
    }

    /// The oldest open hour over all roots (None when some root is listed whole or none is known).
    pub fn oldest_open_hour(&self) -> Option<i64> {
        self.roots.values().copied().min().flatten()
    }
}

/// Tracks, during one listing of some roots, the first hour of each root that is still open.
#[derive(Debug)]
pub struct OpenHours {
    now: i64,
    settle: i64,
    /// root -> first open hour seen (None: nothing open seen yet)
    roots: BTreeMap<String, Option<i64>>,
    /// A blob outside the date layout was seen.
    pub outside_layout: bool,
}

impl OpenHours {
    /// A tracker at `now` (unix seconds) with the source's settle time.
    pub fn new(now: i64, settle_secs: i64) -> OpenHours {
        OpenHours {
            now,
            settle: settle_secs.max(0),
            roots: BTreeMap::new(),
            outside_layout: false,
        }
    }

    /// Notes a listed blob: `pending` when something of it is still to ship (queued, deferred or
    /// failed), `last_modified` in unix seconds. Names outside the date layout only set
    /// [`OpenHours::outside_layout`].
    pub fn observe(&mut self, name: &str, pending: bool, last_modified: Option<i64>) {
        let Some(p) = hour_partition(name) else {
            self.outside_layout = true;
            return;
        };
        let ended = (p.hour + 1) * HOUR;
        let open = pending
            || ended + self.settle > self.now
            || last_modified.is_some_and(|t| t + self.settle > self.now);
        let entry = self.roots.entry(p.root.to_string()).or_insert(None);
        if open {
            *entry = Some(entry.map_or(p.hour, |h| h.min(p.hour)));
        }
    }

    /// Makes sure `root` gets a result even when its listing found nothing.
    pub fn saw_root(&mut self, root: &str) {
        self.roots.entry(root.to_string()).or_insert(None);
    }

    /// The first open hour of `root` after its listing: its first open blob's hour, or the first
    /// hour that has not settled yet by time alone.
    pub fn first_open(&self, root: &str) -> Option<i64> {
        let by_time = (self.now - self.settle).div_euclid(HOUR);
        let seen = self.roots.get(root)?;
        Some(seen.map_or(by_time, |h| h.min(by_time)))
    }

    /// Every root seen, with its first open hour.
    pub fn into_roots(self) -> BTreeMap<String, Option<i64>> {
        let keys: Vec<String> = self.roots.keys().cloned().collect();
        keys.into_iter()
            .map(|root| {
                let open = self.first_open(&root);
                (root, open)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "resourceId=/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1/y=2026/m=11/d=27/h=13/m=00/PT1H.json";

    fn hour_of(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * 24 + h
    }

    #[test]
    fn azure_monitor_names_split_at_the_hour() {
        let p = hour_partition(NAME).unwrap();
        assert_eq!(
            p.root,
            "resourceId=/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1/"
        );
        assert_eq!(hour_label(p.hour), "2026-11-27T13");
        // 2026-11-27T13:00Z is 1,795,784,400 s after the epoch
        assert_eq!(p.hour * 3600, 1_795_784_400);
        let top = hour_partition("y=2024/m=02/d=29/h=00/PT1H.json").unwrap();
        assert_eq!(
            (top.root, hour_label(top.hour).as_str()),
            ("", "2024-02-29T00")
        );
    }

    #[test]
    fn other_names_are_not_partitions() {
        for name in [
            "exports/2026/11/27/a.csv",
            "y=2026/m=13/d=01/h=00/x",
            "y=2026/m=02/d=30/h=00/x",
            "y=2026/m=11/d=27/h=24/x",
            "y=2026/m=11/d=27/x",
            "ay=2026/m=11/d=27/h=01/x",
            "y=2026/m=11/d=27/h=01",
            "y=20x6/m=11/d=27/h=01/x",
            "",
            "y=",
        ] {
            assert_eq!(hour_partition(name), None, "{name}");
        }
        // a later match after a false start
        let p = hour_partition("a/y=x/b/y=2026/m=01/d=01/h=05/PT1H.json").unwrap();
        assert_eq!(p.root, "a/y=x/b/");
    }

    #[test]
    fn calendar_round_trips() {
        for day in [-1, 0, 59, 365, 11_016, 20_419, 20_784, 50_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(
            day_prefix("r/", days_from_civil(2026, 1, 9)),
            "r/y=2026/m=01/d=09/"
        );
    }

    #[test]
    fn year_prefixes_mark_roots() {
        assert!(is_year_prefix("r/", "r/y=2026/"));
        assert!(is_year_prefix("", "y=2026/"));
        assert!(!is_year_prefix("r/", "r/y=26/"));
        assert!(!is_year_prefix("r/", "r/x/"));
        assert!(!is_year_prefix("r/", "q/y=2026/"));
    }

    #[test]
    fn a_poll_lists_only_the_days_with_open_hours() {
        let now = hour_of(2026, 11, 27, 13) * 3600 + 120;
        assert_eq!(prefixes_for_root("r/", None, now), vec!["r/"]);
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2026, 11, 27, 11)), now),
            vec!["r/y=2026/m=11/d=27/"]
        );
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2026, 11, 26, 23)), now),
            vec!["r/y=2026/m=11/d=26/", "r/y=2026/m=11/d=27/"]
        );
        // just before midnight the next day is listed too
        let late = hour_of(2026, 12, 31, 23) * 3600 + 10;
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2026, 12, 31, 20)), late),
            vec!["r/y=2026/m=12/d=31/", "r/y=2027/m=01/d=01/"]
        );
        // days behind: month by month
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2026, 11, 20, 0)), now),
            vec!["r/y=2026/m=11/"]
        );
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2026, 9, 1, 0)), now),
            vec!["r/y=2026/m=09/", "r/y=2026/m=10/", "r/y=2026/m=11/"]
        );
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2025, 12, 30, 0)), now).len(),
            12
        );
        // more than a year behind: the whole root in one listing
        assert_eq!(
            prefixes_for_root("r/", Some(hour_of(2025, 11, 1, 0)), now),
            vec!["r/"]
        );
    }

    #[test]
    fn hours_close_after_settling_and_shipping() {
        let now = hour_of(2026, 11, 27, 13) * 3600 + 600; // 13:10
        let settle = 2 * 3600;
        let old_write = Some(now - 3 * 3600);
        let mut open = OpenHours::new(now, settle);
        open.observe("r/y=2026/m=11/d=27/h=08/m=00/PT1H.json", false, old_write);
        open.observe("r/y=2026/m=11/d=27/h=09/m=00/PT1H.json", false, old_write);
        assert_eq!(
            open.first_open("r/").map(hour_label).as_deref(),
            Some("2026-11-27T11"),
            "everything shipped and settled: open from now - settle"
        );
        // something still to ship at 09 keeps 09 open
        open.observe("r/y=2026/m=11/d=27/h=09/m=00/b.json", true, old_write);
        assert_eq!(
            open.first_open("r/").map(hour_label).as_deref(),
            Some("2026-11-27T09")
        );
        // a recent write keeps an old hour open
        let mut recent = OpenHours::new(now, settle);
        recent.observe(
            "s/y=2026/m=11/d=25/h=01/m=00/PT1H.json",
            false,
            Some(now - 60),
        );
        assert_eq!(
            recent.first_open("s/").map(hour_label).as_deref(),
            Some("2026-11-25T01")
        );
        // a root with nothing listed opens from now - settle; an unknown root has no answer
        recent.saw_root("t/");
        let roots = recent.into_roots();
        assert_eq!(roots.len(), 2);
        assert_eq!(
            roots["t/"].map(hour_label).as_deref(),
            Some("2026-11-27T11")
        );
        // names outside the layout do not create roots
        let mut none = OpenHours::new(now, settle);
        none.observe("exports/a.csv", true, None);
        assert!(none.outside_layout);
        assert!(none.into_roots().is_empty());
    }

    #[test]
    fn passes_alternate_between_full_and_partitions() {
        let mut c = ListingCursor::default();
        assert_eq!(c.next_pass(1000, 86_400, 600), PassKind::Full);
        c.last_full = Some(1000);
        c.last_discovery = Some(1000);
        assert_eq!(
            c.next_pass(1300, 86_400, 600),
            PassKind::Partitions { discover: false }
        );
        assert_eq!(
            c.next_pass(1600, 86_400, 600),
            PassKind::Partitions { discover: true }
        );
        assert_eq!(c.next_pass(87_400, 86_400, 600), PassKind::Full);
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_dropped() {
        let mut c = ListingCursor::default();
        assert_eq!(c.to_text(), "{\"full_pages\":0}");
        c.roots.insert("r/".into(), Some(42));
        c.roots.insert("s/".into(), None);
        c.last_full = Some(7);
        let text = c.to_text();
        assert_eq!(ListingCursor::parse(&text), Some(c.clone()));
        assert_eq!(
            c.oldest_open_hour(),
            None,
            "a root listed whole has no open hour"
        );
        c.roots.remove("s/");
        assert_eq!(c.oldest_open_hour(), Some(42));
        assert_eq!(ListingCursor::parse("y=2026/m=11"), None);
    }

    #[test]
    fn auto_lists_by_partition_once_the_container_outgrows_a_page() {
        let mut c = ListingCursor {
            full_pages: 1,
            ..ListingCursor::default()
        };
        c.roots.insert("r/".into(), Some(1));
        assert!(!c.partitions_pay_off(), "one page: flat is as cheap");
        c.full_pages = 2;
        assert!(c.partitions_pay_off(), "two pages and growing");
        c.outside_layout = true;
        assert!(!c.partitions_pay_off(), "blobs outside the layout");
        c.outside_layout = false;
        c.roots.clear();
        assert!(!c.partitions_pay_off(), "no roots");
        assert_eq!(ListingCursor::parse("{\"roots\":3}"), None);
    }
}
