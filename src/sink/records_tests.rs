//! Tests of the records splitter: line rules, limits, batching determinism, legacy documents.

use super::*;
use rand::{Rng, SeedableRng};

/// Everything a run reported, owned.
#[derive(Debug, Default, PartialEq, Eq)]
struct Run {
    records: Vec<(u64, Vec<u8>)>,
    rejected: Vec<(u64, u64)>,
    batches: Vec<BatchRange>,
}

fn cfg(max_record_size: usize, batch_max_bytes: u64) -> SplitterConfig {
    SplitterConfig {
        max_record_size,
        batch_max_bytes,
        legacy_document_max: 1 << 20,
    }
}

/// Splits `data` (range starting at `start`) pushed in `chunks`-sized pieces.
fn run_with(
    splitter: RecordSplitter,
    data: &[u8],
    chunk: usize,
    end: EndKind,
) -> (Run, SplitSummary) {
    let mut run = Run::default();
    let mut on = |ev: SplitEvent<'_>| -> Result<(), std::convert::Infallible> {
        match ev {
            SplitEvent::Record { offset, data } => run.records.push((offset, data.to_vec())),
            SplitEvent::Rejected { offset, len } => run.rejected.push((offset, len)),
            SplitEvent::BatchEnd(b) => run.batches.push(b),
        }
        Ok(())
    };
    let mut s = splitter;
    for piece in data.chunks(chunk.max(1)) {
        let Ok(()) = s.push(piece, &mut on);
    }
    let Ok(summary) = s.finish(end, &mut on);
    (run, summary)
}

fn run(
    c: SplitterConfig,
    start: u64,
    data: &[u8],
    chunk: usize,
    end: EndKind,
) -> (Run, SplitSummary) {
    run_with(RecordSplitter::new(c, start), data, chunk, end)
}

fn texts(r: &Run) -> Vec<String> {
    r.records
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect()
}

#[test]
fn lines_crlf_empty_and_offsets() {
    let data = b"{\"a\":1}\r\n\n   \n{\"b\":2}\n";
    for chunk in [1, 2, 3, 100] {
        let (r, s) = run(cfg(100, 1000), 10, data, chunk, EndKind::Growing);
        assert_eq!(texts(&r), vec!["{\"a\":1}", "{\"b\":2}"], "chunk {chunk}");
        assert_eq!(r.records[1].0, 10 + 14);
        assert_eq!(s.consumed, 10 + data.len() as u64);
        assert_eq!(s.waiting, 0);
        assert_eq!(s.stats.empty_lines, 2);
        assert_eq!(s.stats.records, 2);
        assert_eq!(
            r.batches,
            vec![BatchRange {
                start: 10,
                end: 10 + data.len() as u64,
                records: 2,
                rejected: 0
            }]
        );
    }
}

#[test]
fn trailing_partial_line_waits_on_growing_and_is_a_record_on_immutable() {
    let data = b"{\"a\":1}\n{\"b\":";
    let (r, s) = run(cfg(100, 1000), 0, data, 3, EndKind::Growing);
    assert_eq!(texts(&r), vec!["{\"a\":1}"]);
    assert_eq!((s.consumed, s.waiting, s.unterminated_end), (8, 5, false));
    assert_eq!(
        r.batches,
        vec![BatchRange {
            start: 0,
            end: 8,
            records: 1,
            rejected: 0
        }]
    );

    let (r, s) = run(cfg(100, 1000), 0, data, 3, EndKind::Immutable);
    assert_eq!(texts(&r), vec!["{\"a\":1}", "{\"b\":"]);
    assert_eq!((s.consumed, s.waiting, s.unterminated_end), (13, 0, true));

    // Continuing the growing blob from its checkpoint gives the whole line.
    let (r, s) = run(cfg(100, 1000), 8, b"{\"b\":2}\n", 4, EndKind::Growing);
    assert_eq!(r.records, vec![(8, b"{\"b\":2}".to_vec())]);
    assert_eq!(s.consumed, 16);
    // a range that ends with its line is not unterminated, whatever the end
    let (_, s) = run(cfg(100, 1000), 8, b"{\"b\":2}\n", 4, EndKind::Immutable);
    assert!(!s.unterminated_end);
}

#[test]
fn blob_that_is_only_a_partial_line() {
    let (r, s) = run(cfg(100, 1000), 0, b"{\"x\"", 2, EndKind::Growing);
    assert!(r.records.is_empty() && r.batches.is_empty());
    assert_eq!((s.consumed, s.waiting), (0, 4));
    let (r, s) = run(cfg(100, 1000), 0, b"{\"x\"\r", 2, EndKind::Immutable);
    assert_eq!(texts(&r), vec!["{\"x\""]);
    assert_eq!(s.consumed, 5);
    let (r, s) = run(cfg(100, 1000), 0, b"", 2, EndKind::Immutable);
    assert!(r.records.is_empty() && r.batches.is_empty());
    assert_eq!(s.consumed, 0);
}

#[test]
fn over_long_lines_are_skipped_whole_with_offsets() {
    let long = vec![b'x'; 50];
    let mut data = b"ok1\n".to_vec();
    data.extend_from_slice(&long);
    data.extend_from_slice(b"\nok2\n");
    data.extend_from_slice(&long); // over-long final line without newline
    for chunk in [1, 7, 1000] {
        let (r, s) = run(cfg(10, 1000), 100, &data, chunk, EndKind::Immutable);
        assert_eq!(texts(&r), vec!["ok1", "ok2"], "chunk {chunk}");
        assert_eq!(r.rejected, vec![(104, 51), (159, 50)]);
        assert_eq!(s.stats.rejected, 2);
        assert_eq!(s.stats.rejected_offsets, vec![104, 159]);
        assert_eq!(s.consumed, 100 + data.len() as u64);
        assert_eq!(r.batches.len(), 1);
        assert_eq!(r.batches[0].rejected, 2);
    }
    // Exactly max_record_size is accepted, with or without CR.
    let (r, _) = run(
        cfg(3, 1000),
        0,
        b"abc\r\nabcd\nab\r\r\n",
        1,
        EndKind::Growing,
    );
    assert_eq!(texts(&r), vec!["abc", "ab\r"]);
    assert_eq!(r.rejected, vec![(5, 5)]);
    // An over-long growing tail stays unconsumed until its newline arrives.
    let (r, s) = run(cfg(3, 1000), 0, b"a\nxxxxxxxx", 3, EndKind::Growing);
    assert!(r.rejected.is_empty());
    assert_eq!((s.consumed, s.waiting), (2, 8));
}

#[test]
fn partial_line_memory_is_bounded() {
    let c = cfg(1000, u64::MAX);
    let mut s = RecordSplitter::new(c, 0);
    let chunk = vec![b'y'; 4096];
    let mut on = |_: SplitEvent<'_>| -> Result<(), ()> { Ok(()) };
    for _ in 0..1000 {
        s.push(&chunk, &mut on).unwrap();
        assert!(s.partial.capacity() <= 2 * 1001, "{}", s.partial.capacity());
    }
    s.push(b"\nz\n", &mut on).unwrap();
    let sum = s.finish(EndKind::Growing, &mut on).unwrap();
    assert_eq!((sum.stats.rejected, sum.stats.records), (1, 1));
}

#[test]
fn batch_cut_is_last_boundary_within_the_limit() {
    // Lines of 10 bytes; limit 25: cuts at 20, 40, ...
    let line = b"012345678\n";
    let data: Vec<u8> = line.repeat(7);
    let (r, _) = run(cfg(100, 25), 0, &data, 3, EndKind::Growing);
    let ends: Vec<(u64, u64, u64)> = r
        .batches
        .iter()
        .map(|b| (b.start, b.end, b.records))
        .collect();
    assert_eq!(
        ends,
        vec![(0, 20, 2), (20, 40, 2), (40, 60, 2), (60, 70, 1)]
    );
    // A boundary exactly at the limit closes there.
    let (r, _) = run(cfg(100, 20), 5, &data, 64, EndKind::Growing);
    assert_eq!(
        r.batches[0],
        BatchRange {
            start: 5,
            end: 25,
            records: 2,
            rejected: 0
        }
    );
    // A line longer than the batch size forms its own batch.
    let (r, _) = run(cfg(100, 5), 0, b"ab\n0123456789\ncd\n", 2, EndKind::Growing);
    let ends: Vec<(u64, u64)> = r.batches.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(ends, vec![(0, 3), (3, 14), (14, 17)]);
}

#[test]
fn close_batch_cuts_at_the_consumed_offset() {
    let mut s = RecordSplitter::new(cfg(100, 1000), 0);
    let mut batches = Vec::new();
    let mut on = |ev: SplitEvent<'_>| -> Result<(), ()> {
        if let SplitEvent::BatchEnd(b) = ev {
            batches.push(b);
        }
        Ok(())
    };
    s.push(b"a\nb\nc", &mut on).unwrap();
    s.close_batch(&mut on).unwrap();
    s.close_batch(&mut on).unwrap(); // nothing new: no empty batch
    s.push(b"\n", &mut on).unwrap();
    s.finish(EndKind::Growing, &mut on).unwrap();
    let ends: Vec<(u64, u64)> = batches.iter().map(|b| (b.start, b.end)).collect();
    assert_eq!(ends, vec![(0, 4), (4, 6)]);
}

#[test]
fn callback_errors_stop_the_splitter() {
    let mut s = RecordSplitter::new(cfg(100, 1000), 0);
    let mut seen = 0;
    let mut on = |_: SplitEvent<'_>| -> Result<(), &'static str> {
        seen += 1;
        if seen == 2 {
            Err("encoder failed")
        } else {
            Ok(())
        }
    };
    assert_eq!(s.push(b"a\nb\nc\n", &mut on), Err("encoder failed"));
}

/// Random JSON-ish lines with CRLF, empties and over-long ones.
fn random_blob(rng: &mut impl Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        match rng.gen_range(0..10) {
            0 => out.extend_from_slice(b"\n"),
            1 => out.extend_from_slice(&vec![b'L'; rng.gen_range(60..200)]),
            _ => out.extend_from_slice(
                format!(
                    "{{\"i\":{i},\"p\":\"{}\"}}",
                    "q".repeat(rng.gen_range(0..40))
                )
                .as_bytes(),
            ),
        }
        out.extend_from_slice(if rng.gen_bool(0.2) { b"\r\n" } else { b"\n" });
    }
    out
}

#[test]
fn same_bytes_same_cuts_whatever_the_chunking() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..30 {
        let data = random_blob(&mut rng, 300);
        let c = cfg(50, rng.gen_range(40..600));
        let (reference, rs) = run(c, 0, &data, data.len(), EndKind::Immutable);
        for chunk in [1, 2, 5, 17, 256] {
            let (r, s) = run(c, 0, &data, chunk, EndKind::Immutable);
            assert_eq!(r, reference, "chunk {chunk}");
            assert_eq!(s, rs);
        }
        // Batches tile the range; each is within the limit unless it is a single line.
        let mut at = 0;
        for b in &reference.batches {
            assert_eq!(b.start, at);
            assert!(b.end - b.start <= c.batch_max_bytes || b.records + b.rejected <= 1);
            at = b.end;
        }
        assert_eq!(at, data.len() as u64);
        // Restarting from any batch end (a checkpoint) reproduces the later batches.
        if let Some(mid) = reference.batches.get(reference.batches.len() / 2) {
            let tail = &data[mid.end as usize..];
            let (r2, _) = run(c, mid.end, tail, 7, EndKind::Immutable);
            let later: Vec<BatchRange> = reference
                .batches
                .iter()
                .filter(|b| b.start >= mid.end)
                .copied()
                .collect();
            assert_eq!(r2.batches, later);
        }
    }
}

#[test]
fn legacy_records_document_is_expanded() {
    let doc =
        b"{\"records\": [\n {\"time\": \"t1\",\n  \"x\": \"a\\nb\"},\n {\"time\": \"t2\"}\n]}\n";
    let c = cfg(1000, 10);
    for chunk in [1, 5, 1000] {
        let sp = RecordSplitter::new(c, 0).with_legacy_detection(doc.len() as u64);
        let (r, s) = run_with(sp, doc, chunk, EndKind::Immutable);
        assert_eq!(
            texts(&r),
            vec![
                "{\"time\": \"t1\",  \"x\": \"a\\nb\"}",
                "{\"time\": \"t2\"}"
            ]
        );
        assert!(s.stats.legacy_document);
        assert_eq!(
            r.batches,
            vec![BatchRange {
                start: 0,
                end: doc.len() as u64,
                records: 2,
                rejected: 0
            }]
        );
        assert_eq!(s.consumed, doc.len() as u64);
    }
    // Without detection (or too big, or not at offset 0) it is just lines.
    let sp = RecordSplitter::new(c, 0).with_legacy_detection(1 << 30);
    let (r, s) = run_with(sp, doc, 3, EndKind::Immutable);
    assert!(!s.stats.legacy_document);
    assert_eq!(r.records.len(), 5);
}

#[test]
fn jsonl_that_starts_like_legacy_falls_back_to_lines() {
    let data = b"{\"records\": [1]}\n{\"records\": [2]}\n";
    let sp = RecordSplitter::new(cfg(1000, 1000), 0).with_legacy_detection(data.len() as u64);
    let (r, s) = run_with(sp, data, 4, EndKind::Immutable);
    assert_eq!(texts(&r), vec!["{\"records\": [1]}", "{\"records\": [2]}"]);
    assert!(!s.stats.legacy_document);
    assert_eq!(r.records[1].0, 17);
    // Plain JSON Lines with detection on stream straight through.
    let data = b"{\"a\":1}\n{\"b\":2}\n";
    let sp = RecordSplitter::new(cfg(1000, 1000), 0).with_legacy_detection(data.len() as u64);
    let (r, _) = run_with(sp, data, 4, EndKind::Immutable);
    assert_eq!(r.records.len(), 2);
    // A single-line legacy document is still a legacy document.
    let data = b"{\"records\":[{\"a\":1},{\"b\":2}]}";
    let sp = RecordSplitter::new(cfg(1000, 1000), 0).with_legacy_detection(data.len() as u64);
    let (r, s) = run_with(sp, data, 4, EndKind::Immutable);
    assert_eq!(texts(&r), vec!["{\"a\":1}", "{\"b\":2}"]);
    assert!(s.stats.legacy_document);
}

#[test]
fn legacy_element_over_max_record_size_is_rejected() {
    let doc = format!(
        "{{\"records\":[{{\"a\":\"{}\"}},{{\"b\":1}}]}}",
        "z".repeat(100)
    );
    let sp = RecordSplitter::new(cfg(50, 1000), 0).with_legacy_detection(doc.len() as u64);
    let (r, s) = run_with(sp, doc.as_bytes(), 16, EndKind::Immutable);
    assert_eq!(texts(&r), vec!["{\"b\":1}"]);
    assert_eq!(r.rejected, vec![(12, 108)]);
    assert_eq!(s.stats.rejected, 1);
}
