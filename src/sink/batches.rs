//! Records-mode batches: the splitter's events turned into encoded destination objects, one
//! [`RecordEncoder`] per batch, with the records that lie back to back in a downloaded chunk
//! handed to the encoder as one slice of it.
//!
//! Owns: which encoder a record goes to, and the batches closed but not yet taken. Must not: do
//! I/O, decide where batches close (the splitter does) or when to commit (the pipeline does).

use super::compress::{CompressError, EncodedTail, RecordEncoder};
use super::records::{BatchRange, EndKind, RecordSplitter, SplitEvent, SplitSummary};
use crate::config::Compression;

/// The records of a source range being encoded: the open batch's encoder and the batches the
/// splitter closed, in order, with their encoded tails.
#[derive(Debug)]
pub struct BatchEncoder {
    /// The batch being filled (the next batch's encoder is made from it).
    open: RecordEncoder,
    /// Batches closed since [`take_closed`](Self::take_closed) was last called.
    closed: Vec<(BatchRange, EncodedTail)>,
}

impl BatchEncoder {
    /// No record yet; objects are encoded with `compression` at `level` (see
    /// [`RecordEncoder::at_level`]).
    pub fn new(compression: Compression, level: Option<i32>) -> Result<Self, CompressError> {
        Ok(BatchEncoder {
            open: RecordEncoder::at_level(compression, level)?,
            closed: Vec::new(),
        })
    }

    /// Splits the next chunk of the range and encodes its records.
    pub fn push(
        &mut self,
        splitter: &mut RecordSplitter,
        chunk: &[u8],
    ) -> Result<(), CompressError> {
        let mut run = ChunkLineRun::new(chunk);
        splitter.push(chunk, &mut |ev| self.on_event(ev, &mut run))?;
        run.flush(&mut self.open)
    }

    /// Ends the range (see [`RecordSplitter::finish`]) and encodes what it still held.
    pub fn finish(
        &mut self,
        splitter: RecordSplitter,
        end: EndKind,
    ) -> Result<SplitSummary, CompressError> {
        // what the splitter still holds is its own copy, never a chunk's
        let mut run = ChunkLineRun::new(&[]);
        let summary = splitter.finish(end, &mut |ev| self.on_event(ev, &mut run))?;
        run.flush(&mut self.open)?;
        Ok(summary)
    }

    /// The batches closed so far, in source order, each with the last bytes of its object.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, (BatchRange, EncodedTail)> {
        self.closed.drain(..)
    }

    /// Encoded bytes of the open batch, when there are at least `min_bytes` (see
    /// [`RecordEncoder::take_ready`]).
    pub fn take_ready(&mut self, min_bytes: usize) -> Option<bytes::Bytes> {
        self.open.take_ready(min_bytes)
    }

    fn on_event(
        &mut self,
        ev: SplitEvent<'_>,
        run: &mut ChunkLineRun<'_>,
    ) -> Result<(), CompressError> {
        match ev {
            SplitEvent::Record { data, .. } => run.record(data, &mut self.open)?,
            SplitEvent::Rejected { .. } => {}
            SplitEvent::BatchEnd(range) => {
                run.flush(&mut self.open)?;
                let next = self.open.next_object()?;
                let done = std::mem::replace(&mut self.open, next);
                self.closed.push((range, done.finish()?));
            }
        }
        Ok(())
    }
}

/// Records of one source chunk that lie back to back there, each followed by a lone `\n`,
/// handed to [`RecordEncoder::write_lines`] as one slice of the chunk instead of one by one.
/// The splitter reports records singly; most of them are slices of the chunk it was given, and
/// a run of them is exactly the plaintext the encoder would write. A record that is not in the
/// chunk (a line that straddled two chunks, a legacy document's element) or not followed by
/// `\n` there (a CRLF line) goes to [`RecordEncoder::write_record`] after the run before it.
///
/// [`BatchEncoder`] flushes it before an encoder is finished (a batch end) and when the
/// splitter is done with the chunk: a run not flushed is not written.
#[derive(Debug)]
struct ChunkLineRun<'c> {
    /// The chunk the splitter is splitting.
    chunk: &'c [u8],
    /// Where the run starts in the chunk.
    start: usize,
    /// Where it ends (exclusive, after the last record's `\n`).
    end: usize,
    /// Records in the run; 0 when there is none.
    count: u64,
}

impl<'c> ChunkLineRun<'c> {
    /// No run yet, over `chunk`.
    fn new(chunk: &'c [u8]) -> Self {
        ChunkLineRun {
            chunk,
            start: 0,
            end: 0,
            count: 0,
        }
    }

    /// Writes `record`, reported by the splitter while it split the chunk, through the run.
    fn record(&mut self, record: &[u8], encoder: &mut RecordEncoder) -> Result<(), CompressError> {
        // where the record lies in the chunk, if it does: two allocations do not overlap, so
        // an address inside the chunk means these are the chunk's own bytes
        let start = (record.as_ptr() as usize).checked_sub(self.chunk.as_ptr() as usize);
        let end = start.and_then(|s| s.checked_add(record.len()));
        match (start, end) {
            (Some(start), Some(end)) if end < self.chunk.len() && self.chunk[end] == b'\n' => {
                if self.count > 0 && start == self.end {
                    self.end = end + 1;
                    self.count += 1;
                } else {
                    self.flush(encoder)?;
                    (self.start, self.end, self.count) = (start, end + 1, 1);
                }
                Ok(())
            }
            _ => {
                self.flush(encoder)?;
                encoder.write_record(record)
            }
        }
    }

    /// Writes the run gathered so far.
    fn flush(&mut self, encoder: &mut RecordEncoder) -> Result<(), CompressError> {
        if self.count == 0 {
            return Ok(());
        }
        let count = std::mem::take(&mut self.count);
        encoder.write_lines(&self.chunk[self.start..self.end], count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::compress::tests::line;
    use crate::sink::records::SplitterConfig;
    use rand::{Rng, SeedableRng};
    use std::io::Read;

    fn unzstd(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The batches a [`BatchEncoder`] closes hold the same records as writing every record
    /// alone, whatever the chunking, with CRLF and whitespace-only lines, over-long (rejected)
    /// lines, lines that straddle chunks, batch cuts inside chunks and an unterminated end.
    #[test]
    fn every_record_of_every_batch_is_encoded_in_order_whatever_the_chunking() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for round in 0..40u64 {
            let mut source = Vec::new();
            for i in 0..rng.gen_range(50..600) {
                match rng.gen_range(0..20) {
                    0 => source.extend_from_slice(b"  \t\n"),
                    1 => source.extend_from_slice(&vec![b'x'; rng.gen_range(2000..5000)]),
                    2 => source.extend_from_slice(format!("{{\"crlf\":{i}}}\r").as_bytes()),
                    _ => source.extend_from_slice(line(&mut rng, i).as_bytes()),
                }
                source.push(b'\n');
            }
            if rng.gen_bool(0.5) {
                source.extend_from_slice(b"{\"unterminated\":1}");
            }
            let cfg = SplitterConfig {
                max_record_size: 1500,
                batch_max_bytes: rng.gen_range(2_000..60_000),
                legacy_document_max: 0,
            };
            let mut cuts: Vec<usize> = (0..rng.gen_range(0..40))
                .map(|_| rng.gen_range(0..=source.len()))
                .collect();
            cuts.sort_unstable();
            cuts.push(source.len());
            let chunks: Vec<&[u8]> = std::iter::once(0)
                .chain(cuts.iter().copied())
                .zip(cuts.iter().copied())
                .map(|(from, to)| &source[from..to])
                .collect();

            // the encoder under test
            let mut splitter = RecordSplitter::new(cfg, 0);
            let mut batches = BatchEncoder::new(Compression::Zstd, None).unwrap();
            let mut got = Vec::new();
            for &chunk in &chunks {
                batches.push(&mut splitter, chunk).unwrap();
                got.extend(batches.take_closed());
            }
            batches.finish(splitter, EndKind::Immutable).unwrap();
            got.extend(batches.take_closed());

            // the reference: every record written alone
            let mut splitter = RecordSplitter::new(cfg, 0);
            let mut open = RecordEncoder::new(Compression::Zstd).unwrap();
            let mut want = Vec::new();
            let mut on = |ev: SplitEvent<'_>| -> Result<(), CompressError> {
                match ev {
                    SplitEvent::Record { data, .. } => open.write_record(data)?,
                    SplitEvent::Rejected { .. } => {}
                    SplitEvent::BatchEnd(range) => {
                        let done =
                            std::mem::replace(&mut open, RecordEncoder::new(Compression::Zstd)?);
                        want.push((range, done.finish()?));
                    }
                }
                Ok(())
            };
            for &chunk in &chunks {
                splitter.push(chunk, &mut on).unwrap();
            }
            splitter.finish(EndKind::Immutable, &mut on).unwrap();

            let view = |batches: &[(BatchRange, EncodedTail)]| {
                batches
                    .iter()
                    .map(|(range, tail)| {
                        (
                            *range,
                            unzstd(&tail.tail),
                            tail.records,
                            tail.plaintext_sha256,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert!(!want.is_empty());
            assert_eq!(view(&got), view(&want), "round {round}");
            assert!(
                got.iter().map(|b| b.1.records).sum::<u64>() > 0,
                "round {round}"
            );
        }
    }
}
