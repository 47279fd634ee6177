//! Records mode: a streaming splitter of JSON Lines that turns a source byte range starting at
//! offset `S` into complete records, rejects over-long lines without cutting them, and says
//! where destination objects close (`batch_max_bytes`) and where the next checkpoint is.
//!
//! Owns: line boundaries, record counting, batch cuts. Must not: do I/O, compress, or decide
//! when to commit (the pipeline does, after the destination commit succeeded).
//!
//! Contract:
//! - A record is the line's data **without** its terminator (`\n`, or `\r\n`); the encoder
//!   writes each record followed by `\n`, so CRLF sources come out as LF JSON Lines.
//! - Empty and whitespace-only lines are not records, but their bytes are consumed.
//! - A line whose data is longer than `max_record_size` is reported as [`SplitEvent::Rejected`]
//!   with its offset and skipped whole (never cut); its bytes are consumed. Memory for a line
//!   in progress is bounded by `max_record_size` (+1 byte for a pending `\r`).
//! - At [`EndKind::Growing`] (an append blob that may still grow) a trailing line without `\n`
//!   waits for the next poll: it is not consumed. At [`EndKind::Immutable`] it is a record.
//! - Batches: a batch starting at `B` closes at the last line boundary `<= B + batch_max_bytes`,
//!   measured in source bytes, so the same bytes always give the same cuts whatever the chunking.
//!   A single line longer than `batch_max_bytes` forms a batch of its own.
//! - Legacy `{"records":[...]}` documents (Azure Monitor before 2018): enabled per blob with
//!   [`RecordSplitter::with_legacy_detection`] only for an immutable blob read from offset 0
//!   whose size is at most [`SplitterConfig::legacy_document_max`]. The document is buffered
//!   (bounded by that cap), validated with serde_json, and expanded into one record per array
//!   element (line breaks inside an element removed). It is always one batch covering the whole
//!   blob, because a range starting inside the document could not be parsed again. A document
//!   that turns out invalid is split as ordinary lines.

mod legacy;

use std::borrow::Cow;

/// How many rejected-line offsets are kept for reporting (all are counted).
pub const REJECTED_OFFSETS_KEPT: usize = 1000;

/// Settings of a splitter, from the source configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitterConfig {
    /// Longest accepted record, in bytes of data (terminator excluded).
    pub max_record_size: usize,
    /// A batch closes at the last line boundary at most this many source bytes after its start.
    pub batch_max_bytes: u64,
    /// Largest blob examined for the legacy `{"records":[...]}` format (held in memory); 0 disables.
    pub legacy_document_max: u64,
}

impl Default for SplitterConfig {
    fn default() -> Self {
        SplitterConfig {
            max_record_size: 1 << 20,
            batch_max_bytes: 64 << 20,
            legacy_document_max: 64 << 20,
        }
    }
}

/// How the source range ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// The end of an immutable (block) blob: a last line without `\n` is a record.
    Immutable,
    /// The current end of a blob that may grow (append blob): a last line without `\n` waits.
    Growing,
}

/// One closed batch: the source range `[start, end)` a destination object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchRange {
    /// First source byte of the batch (the object's start offset: part of its name).
    pub start: u64,
    /// End of the batch (exclusive): the checkpoint once the object is committed.
    pub end: u64,
    /// Records in the batch.
    pub records: u64,
    /// Over-long lines skipped inside the batch.
    pub rejected: u64,
}

/// What the splitter reports, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitEvent<'a> {
    /// A complete record: the line's data without its terminator.
    Record {
        /// Source offset of the line's first byte.
        offset: u64,
        /// The record's bytes.
        data: &'a [u8],
    },
    /// A line longer than `max_record_size`, skipped whole.
    Rejected {
        /// Source offset of the line's first byte.
        offset: u64,
        /// Line length including its terminator.
        len: u64,
    },
    /// The current batch closed; the records reported before belong to it.
    BatchEnd(BatchRange),
}

/// Counters over everything the splitter consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitStats {
    /// Records reported.
    pub records: u64,
    /// Over-long lines skipped.
    pub rejected: u64,
    /// Offsets of the first [`REJECTED_OFFSETS_KEPT`] skipped lines.
    pub rejected_offsets: Vec<u64>,
    /// Empty or whitespace-only lines skipped.
    pub empty_lines: u64,
    /// The range was a legacy `{"records":[...]}` document.
    pub legacy_document: bool,
}

/// Result of [`RecordSplitter::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSummary {
    /// End of the last complete line consumed: the checkpoint once every batch is committed.
    pub consumed: u64,
    /// Bytes after `consumed` left for the next poll (a partial last line of a growing blob).
    pub waiting: u64,
    /// At [`EndKind::Immutable`]: the range ended inside a line without `\n`, taken as a record
    /// (or rejected) as it was.
    pub unterminated_end: bool,
    /// Counters.
    pub stats: SplitStats,
}

/// Legacy-format detection state.
#[derive(Debug)]
enum Legacy {
    /// Not looking (the default).
    Off,
    /// Collecting the first bytes to decide.
    Sniffing(Vec<u8>),
    /// Looks legacy: holding the whole document until the end.
    Buffering(Vec<u8>),
}

/// Streaming JSON Lines splitter over one source range; see the module docs for the contract.
#[derive(Debug)]
pub struct RecordSplitter {
    /// Settings.
    config: SplitterConfig,
    /// Source offset of the next byte pushed.
    pos: u64,
    /// End of the last complete line consumed.
    consumed: u64,
    /// Bytes of the line in progress (from `consumed`), unless it is being skipped.
    partial: Vec<u8>,
    /// The line in progress is over-long: its bytes are dropped until its `\n`.
    skipping: bool,
    /// The batch being filled.
    batch: BatchRange,
    /// Counters.
    stats: SplitStats,
    /// Legacy-format detection.
    legacy: Legacy,
}

impl RecordSplitter {
    /// A splitter for a range starting at source offset `start` (the checkpoint).
    pub fn new(config: SplitterConfig, start: u64) -> Self {
        RecordSplitter {
            config,
            pos: start,
            consumed: start,
            partial: Vec::new(),
            skipping: false,
            batch: BatchRange {
                start,
                end: start,
                records: 0,
                rejected: 0,
            },
            stats: SplitStats::default(),
            legacy: Legacy::Off,
        }
    }

    /// Enables detection of a legacy `{"records":[...]}` document; only takes effect for an
    /// immutable blob of `blob_size` bytes read from offset 0 within `legacy_document_max`.
    pub fn with_legacy_detection(mut self, blob_size: u64) -> Self {
        if self.pos == 0
            && self.config.legacy_document_max > 0
            && blob_size <= self.config.legacy_document_max
        {
            self.legacy = Legacy::Sniffing(Vec::new());
        }
        self
    }

    /// End of the last complete line consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Start of the batch being filled.
    pub fn batch_start(&self) -> u64 {
        self.batch.start
    }

    /// Counters so far.
    pub fn stats(&self) -> &SplitStats {
        &self.stats
    }

    /// Feeds the next bytes of the range; events go to `on` in source order. An error from `on`
    /// stops the splitter where it is and is returned (the splitter must then be dropped).
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &mut self.legacy {
            Legacy::Off => self.push_lines(chunk, on),
            Legacy::Sniffing(buf) => {
                buf.extend_from_slice(chunk);
                match legacy::sniff(buf) {
                    legacy::Sniff::NeedMore => Ok(()),
                    legacy::Sniff::Candidate => {
                        let buf = std::mem::take(buf);
                        self.legacy = Legacy::Buffering(buf);
                        self.check_legacy_cap(on)
                    }
                    legacy::Sniff::NotLegacy => {
                        let buf = std::mem::take(buf);
                        self.legacy = Legacy::Off;
                        self.push_lines(&buf, on)
                    }
                }
            }
            Legacy::Buffering(buf) => {
                buf.extend_from_slice(chunk);
                self.check_legacy_cap(on)
            }
        }
    }

    /// More bytes than announced: stop buffering and split what arrived as lines.
    fn check_legacy_cap<E>(
        &mut self,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Legacy::Buffering(buf) = &self.legacy {
            if buf.len() as u64 > self.config.legacy_document_max {
                return self.abandon_legacy(on);
            }
        }
        Ok(())
    }

    /// Splits whatever the legacy detection held as ordinary lines.
    fn abandon_legacy<E>(
        &mut self,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match std::mem::replace(&mut self.legacy, Legacy::Off) {
            Legacy::Sniffing(buf) | Legacy::Buffering(buf) => self.push_lines(&buf, on),
            Legacy::Off => Ok(()),
        }
    }

    /// Closes the batch being filled at the last consumed line boundary (for `batch_max_age`),
    /// when it holds any consumed bytes. The next batch starts there.
    pub fn close_batch<E>(
        &mut self,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.consumed > self.batch.start {
            self.emit_batch_end(self.consumed, on)?;
        }
        Ok(())
    }

    /// Ends the range: at [`EndKind::Immutable`] a last line without `\n` is a record (or a
    /// rejected line); at [`EndKind::Growing`] it waits. Closes the last batch.
    pub fn finish<E>(
        mut self,
        end: EndKind,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<SplitSummary, E> {
        match (std::mem::replace(&mut self.legacy, Legacy::Off), end) {
            (Legacy::Buffering(doc), EndKind::Immutable) => match legacy::element_ranges(&doc) {
                Some(ranges) => self.emit_legacy(&doc, &ranges, on)?,
                None => self.push_lines(&doc, on)?,
            },
            (Legacy::Sniffing(buf) | Legacy::Buffering(buf), _) => self.push_lines(&buf, on)?,
            (Legacy::Off, _) => {}
        }
        let unterminated_end = end == EndKind::Immutable && self.pos > self.consumed;
        if unterminated_end {
            let line_start = self.consumed;
            if self.skipping {
                self.skipping = false;
                self.reject(line_start, self.pos, on)?;
            } else {
                let line = std::mem::take(&mut self.partial);
                self.complete_line(&line, line_start, self.pos, on)?;
            }
        }
        self.close_batch(on)?;
        Ok(SplitSummary {
            consumed: self.consumed,
            waiting: self.pos - self.consumed,
            unterminated_end,
            stats: self.stats,
        })
    }

    /// The line-splitting core.
    fn push_lines<E>(
        &mut self,
        chunk: &[u8],
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let limit = self.config.max_record_size.saturating_add(1);
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(i);
            let tail = tail.get(1..).unwrap_or_default();
            let line_start = self.consumed;
            let line_end = self.pos + i as u64 + 1;
            self.pos = line_end;
            if self.skipping {
                self.skipping = false;
                self.reject(line_start, line_end, on)?;
            } else if self.partial.is_empty() {
                self.complete_line(head, line_start, line_end, on)?;
            } else if self.partial.len() + head.len() > limit {
                self.partial.clear();
                self.reject(line_start, line_end, on)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                let r = self.complete_line(&line, line_start, line_end, on);
                line.clear();
                self.partial = line;
                r?;
            }
            rest = tail;
        }
        self.pos += rest.len() as u64;
        if self.skipping {
            // Dropping bytes of an over-long line until its end.
        } else if self.partial.len() + rest.len() > limit {
            self.partial = Vec::new();
            self.skipping = true;
        } else {
            self.partial.extend_from_slice(rest);
        }
        Ok(())
    }

    /// A complete line `[start, end)` whose bytes (without `\n`) are `line`.
    fn complete_line<E>(
        &mut self,
        line: &[u8],
        start: u64,
        end: u64,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let data = line.strip_suffix(b"\r").unwrap_or(line);
        if data.len() > self.config.max_record_size {
            return self.reject(start, end, on);
        }
        self.before_line(start, end, on)?;
        if data.iter().all(u8::is_ascii_whitespace) {
            self.stats.empty_lines += 1;
        } else {
            self.stats.records += 1;
            self.batch.records += 1;
            on(SplitEvent::Record {
                offset: start,
                data,
            })?;
        }
        self.after_line(end, on)
    }

    /// An over-long line `[start, end)`: counted, reported, skipped.
    fn reject<E>(
        &mut self,
        start: u64,
        end: u64,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.before_line(start, end, on)?;
        self.stats.rejected += 1;
        self.batch.rejected += 1;
        if self.stats.rejected_offsets.len() < REJECTED_OFFSETS_KEPT {
            self.stats.rejected_offsets.push(start);
        }
        on(SplitEvent::Rejected {
            offset: start,
            len: end - start,
        })?;
        self.after_line(end, on)
    }

    /// Closes the batch before a line that would overshoot it, unless the batch is empty.
    fn before_line<E>(
        &mut self,
        start: u64,
        end: u64,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if end > self.batch_limit() && start > self.batch.start {
            self.emit_batch_end(start, on)?;
        }
        Ok(())
    }

    /// Consumes a line ending at `end`; closes the batch when no later boundary can fit.
    fn after_line<E>(
        &mut self,
        end: u64,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.consumed = end;
        if end >= self.batch_limit() {
            self.emit_batch_end(end, on)?;
        }
        Ok(())
    }

    fn batch_limit(&self) -> u64 {
        self.batch.start.saturating_add(self.config.batch_max_bytes)
    }

    fn emit_batch_end<E>(
        &mut self,
        end: u64,
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let closed = BatchRange { end, ..self.batch };
        self.batch = BatchRange {
            start: end,
            end,
            records: 0,
            rejected: 0,
        };
        on(SplitEvent::BatchEnd(closed))
    }

    /// Reports the elements of a valid legacy document as records, in one batch.
    fn emit_legacy<E>(
        &mut self,
        doc: &[u8],
        ranges: &[(usize, usize)],
        on: &mut impl FnMut(SplitEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.stats.legacy_document = true;
        let base = self.pos;
        for &(s, e) in ranges {
            let Some(element) = doc.get(s..e) else {
                continue;
            };
            let line: Cow<'_, [u8]> = legacy::one_line(element);
            let offset = base + s as u64;
            if line.len() > self.config.max_record_size {
                self.stats.rejected += 1;
                self.batch.rejected += 1;
                if self.stats.rejected_offsets.len() < REJECTED_OFFSETS_KEPT {
                    self.stats.rejected_offsets.push(offset);
                }
                on(SplitEvent::Rejected {
                    offset,
                    len: (e - s) as u64,
                })?;
            } else {
                self.stats.records += 1;
                self.batch.records += 1;
                on(SplitEvent::Record {
                    offset,
                    data: &line,
                })?;
            }
        }
        self.pos = base + doc.len() as u64;
        self.consumed = self.pos;
        // The whole document is one batch, whatever batch_max_bytes says.
        self.emit_batch_end(self.pos, on)
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
