//! Progress of a growing (append) blob taken from the objects the destination already holds,
//! where the checkpoint may trail them by more than one object: the state directory was lost,
//! replaced by an empty one or restored from an older copy, or a power cut took the last
//! transactions of its write-ahead log.
//!
//! A checkpoint that trails by one object is the crash case the names are made for: the re-ship
//! rewrites that object, longer. One that trails by two or more would re-ship from an offset whose
//! range now overlaps later objects (each poll ended an object where the blob ended then), and
//! the records between would land twice. So before a blob's first object in this process, when
//! its checkpoint was written by an earlier process (or it has none though it may have been
//! shipped), the destination is asked what it holds of this blob version from the checkpoint's
//! offset on, and shipping continues after the last object of that gapless run. Block blobs need
//! none of it: a re-ship of the same version cuts the same objects under the same names.
//!
//! Owns: when to ask (once per blob per process, and never on a source whose destination prefix
//! held nothing when this process first looked), and the gapless run of objects from an offset.
//! Must not: write anything (the caller commits the checkpoint) or count objects of another
//! tenant, source or blob version.

use std::collections::BTreeMap;

use tokio::sync::OnceCell;

use crate::blob_api::BlobItem;
use crate::sink::{Destination, SinkError};

/// Objects listed per List Blobs call while recovering.
const PAGE: u32 = 5000;

/// Per source: when this process started shipping it, and whether the destination held any of
/// its objects then.
#[derive(Debug)]
pub struct EarlierShipments {
    started_at: i64,
    destination_had_objects: OnceCell<bool>,
}

/// What the destination already holds of one blob version from an offset on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Covered {
    /// End of the gapless run of committed objects (the offset asked for when there is none).
    pub end: u64,
    /// Records in those objects (`ferry_records`; 0 in copy mode).
    pub records: u64,
    /// Objects in the run.
    pub objects: u64,
}

impl EarlierShipments {
    /// For a source whose shipping starts now (`unix_now` seconds).
    pub fn starting_at(unix_now: i64) -> EarlierShipments {
        EarlierShipments {
            started_at: unix_now,
            destination_had_objects: OnceCell::new(),
        }
    }

    /// True when an earlier process may have shipped past this blob's checkpoint: its
    /// checkpoint (of this version) was written before this process started, or it has none
    /// and the blob was created before this process started (unix seconds both).
    pub fn may_trail(&self, checkpointed_at: Option<i64>, created_at: i64) -> bool {
        match checkpointed_at {
            Some(at) => at <= self.started_at,
            None => created_at <= self.started_at,
        }
    }

    /// True when the destination held objects under `source_prefix` when first asked: if it did
    /// not, no earlier process shipped anything of this source and nothing need be asked again.
    pub async fn destination_had_objects(
        &self,
        dest: &Destination,
        source_prefix: &str,
    ) -> Result<bool, SinkError> {
        self.destination_had_objects
            .get_or_try_init(|| async {
                let bearer = dest.bearer().await?;
                let page = dest
                    .container()
                    .list_page(&bearer, Some(source_prefix), None, 1)
                    .await?;
                Ok(!page.blobs.is_empty())
            })
            .await
            .copied()
    }
}

/// Lists the objects under `prefix` and returns the gapless run of them from offset `from`,
/// counting only objects whose name is exactly `name_at(start)` for the start offset in their
/// `ferry_source_range` metadata (so objects of another blob version or source never count).
pub async fn covered(
    dest: &Destination,
    prefix: &str,
    from: u64,
    name_at: impl Fn(u64) -> String,
) -> Result<Covered, SinkError> {
    let bearer = dest.bearer().await?;
    let mut ranges: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = dest
            .container()
            .list_page(&bearer, Some(prefix), marker.as_deref(), PAGE)
            .await?;
        for blob in &page.blobs {
            if let Some((start, end, records)) = shipped_range(blob) {
                if start >= from && end > start && blob.name == name_at(start) {
                    ranges.insert(start, (end, records));
                }
            }
        }
        match page.next_marker {
            Some(m) if !m.is_empty() => marker = Some(m),
            _ => break,
        }
    }
    Ok(contiguous(&ranges, from))
}

/// `ferry_source_range` (`start-end`) and `ferry_records` of a shipped object.
fn shipped_range(blob: &BlobItem) -> Option<(u64, u64, u64)> {
    let (start, end) = blob.metadata.get("ferry_source_range")?.split_once('-')?;
    let records = blob
        .metadata
        .get("ferry_records")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    Some((start.parse().ok()?, end.parse().ok()?, records))
}

/// The run from `from` that objects keyed by start offset cover without a gap.
fn contiguous(ranges: &BTreeMap<u64, (u64, u64)>, from: u64) -> Covered {
    let mut c = Covered {
        end: from,
        ..Covered::default()
    };
    for (&start, &(end, records)) in ranges.range(from..) {
        if start != c.end {
            break;
        }
        c.end = end;
        c.records += records;
        c.objects += 1;
    }
    c
}

/// The longest common prefix of two names, cut back to a character boundary.
pub fn common_prefix(a: &str, b: &str) -> String {
    let n = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    a[..n].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gapless_run_from_zero_counts() {
        let mut r = BTreeMap::new();
        r.insert(0, (16, 2));
        r.insert(16, (24, 1));
        assert_eq!(
            contiguous(&r, 0),
            Covered {
                end: 24,
                records: 3,
                objects: 2
            }
        );
        r.insert(40, (50, 1)); // after a gap: not covered
        assert_eq!(contiguous(&r, 0).end, 24);
        // from a checkpoint two objects behind
        assert_eq!(contiguous(&r, 16).end, 24);
        let mut late = BTreeMap::new();
        late.insert(16, (24, 1)); // nothing from 0
        assert_eq!(contiguous(&late, 0), Covered::default());
        assert_eq!(contiguous(&late, 30).end, 30);
    }

    #[test]
    fn only_checkpoints_of_an_earlier_process_may_trail() {
        let e = EarlierShipments::starting_at(1000);
        assert!(e.may_trail(Some(999), 5000));
        assert!(
            e.may_trail(Some(1000), 5000),
            "the same second may be the earlier process"
        );
        assert!(!e.may_trail(Some(1001), 0));
        assert!(e.may_trail(None, 900));
        assert!(
            !e.may_trail(None, 1001),
            "created after the start: never shipped"
        );
    }

    #[test]
    fn common_prefixes_stop_before_the_first_difference() {
        assert_eq!(
            common_prefix(
                "t=a/s=b/x.json@abc.00000000000000000000.jsonl.zst",
                "t=a/s=b/x.json@abc.18446744073709551615.jsonl.zst"
            ),
            "t=a/s=b/x.json@abc."
        );
        assert_eq!(common_prefix("é1", "é2"), "é");
        assert_eq!(common_prefix("ab", "abc"), "ab");
    }
}
