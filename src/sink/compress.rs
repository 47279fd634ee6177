//! Compression of records-mode objects: a [`RecordEncoder`] writes records as JSON Lines
//! through zstd, gzip (both at level 1 unless the source sets `compression_level`) or nothing
//! into an in-memory buffer that the uploader drains block by block, so memory stays bounded by
//! the block size whatever the object size.
//!
//! Owns: the encoded bytes of one destination object, its content encoding and extension, the
//! plaintext SHA-256 and length that go into the object's metadata, and the process-wide pool
//! of idle zstd contexts that objects borrow one at a time. Must not: do I/O or decide when an
//! object closes.

use std::io::Write;
use std::sync::Mutex;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::config::Compression;

/// Content type of records-mode objects.
pub const JSONL_CONTENT_TYPE: &str = "application/x-ndjson";

/// zstd level used unless the source sets `compression_level` (fast: about 580 MB/s per core
/// on this machine class).
const ZSTD_LEVEL: i32 = 1;

/// gzip level used unless the source sets `compression_level` (`flate2::Compression::fast`).
const GZIP_LEVEL: u32 = 1;

/// zstd window, 128 KiB (level 1 would take 512 KiB for a stream of unknown length). A streaming
/// zstd context compresses from its own input buffer of one window plus one 128 KiB block; at
/// 512 KiB that buffer no longer stays in a core's L2 cache next to the TLS and hashing work, and
/// a large records run spent about a fifth more CPU (`docs/BENCHMARKS.md`, "Run 11"). The cost
/// is about 3 % more compressed bytes on diagnostic logs; readers need less memory to decode.
const ZSTD_WINDOW_LOG: u32 = 17;

/// Largest hash and chain table (log2 of entries) a zstd frame gets: twice the window's
/// positions, the bound zstd itself applies when it knows the input's size. A stream's size is
/// unknown, and then zstd keeps each level's tables sized for its own 2 to 8 MiB window,
/// whatever window was set: a context at level 19 took 83 MiB, at level 9 11 MiB; bounded so,
/// 3.7 and 2.2 MiB (a `compression_level` of 4 or more; the default level's tables are smaller).
const ZSTD_TABLE_LOG_MAX: u32 = ZSTD_WINDOW_LOG + 1;

/// First zstd level whose own hash or chain table is larger than [`ZSTD_TABLE_LOG_MAX`]
/// (zstd 1.5's `clevels.h`, inputs of unknown size: level 3 has 2^17 and 2^16 entries, level
/// 4 2^18 and 2^18, higher levels more).
const ZSTD_FIRST_LEVEL_OVER_TABLE_LOG: i32 = 4;

/// Whether zstd frames carry a content checksum (XXH64 of the plaintext): no. The checksum
/// covers only what happens to the bytes between Ferry's compressor and a reader's decompressor,
/// which TLS in transit and Azure Storage's own integrity checks at rest already cover; the
/// end-to-end check is the object's `ferry_plaintext_sha256` metadata, computed over the same
/// plaintext. Hashing every byte a second time cost about 3.5 % of a large records run's CPU
/// (`docs/BENCHMARKS.md`, "Runs 19 to 21" and "Run 43").
const ZSTD_CONTENT_CHECKSUM: bool = false;

/// `Content-Encoding` header value, `None` for uncompressed objects.
pub fn content_encoding(c: Compression) -> Option<&'static str> {
    match c {
        Compression::Zstd => Some("zstd"),
        Compression::Gzip => Some("gzip"),
        Compression::None => None,
    }
}

/// File extension without the leading dot.
pub fn extension(c: Compression) -> &'static str {
    match c {
        Compression::Zstd => "jsonl.zst",
        Compression::Gzip => "jsonl.gz",
        Compression::None => "jsonl",
    }
}

/// Errors of the encoder; the compression libraries only fail on internal errors here, since
/// the output is memory.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The compressor failed; the object cannot be completed and must be re-shipped.
    #[error("{compression} compression failed: {source}; the object is abandoned and will be re-shipped from its checkpoint")]
    Codec {
        /// Which codec.
        compression: &'static str,
        /// The library's error.
        #[source]
        source: std::io::Error,
    },
}

/// The codec writing into the output buffer.
enum Codec {
    /// zstd before the first record: the encoder that waits after an object's last batch takes
    /// no context from the pool when no record follows.
    ZstdUnstarted,
    Zstd(ZstdFrame),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Plain(Vec<u8>),
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::ZstdUnstarted | Codec::Zstd(_) => "Zstd",
            Codec::Gzip(_) => "Gzip",
            Codec::Plain(_) => "Plain",
        })
    }
}

/// What is left once the object's stream is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedTail {
    /// The last encoded bytes (everything not taken with `take_ready` yet).
    pub tail: Bytes,
    /// Records written.
    pub records: u64,
    /// Uncompressed length of the object.
    pub plaintext_len: u64,
    /// SHA-256 of the uncompressed object (object metadata).
    pub plaintext_sha256: [u8; 32],
    /// Encoded length of the whole object (taken blocks plus `tail`).
    pub encoded_len: u64,
}

/// Encodes the records of one destination object.
#[derive(Debug)]
pub struct RecordEncoder {
    /// Which codec (for headers and names).
    compression: Compression,
    /// The source's `compression_level` (`None`: the codec's default).
    level: Option<i32>,
    /// The codec and its output buffer.
    codec: Codec,
    /// Records written.
    records: u64,
    /// Uncompressed bytes written.
    plaintext_len: u64,
    /// Hash of the uncompressed bytes.
    hasher: Sha256,
    /// Encoded bytes handed out by `take_ready`.
    taken: u64,
    /// Records (with their `\n`) not yet hashed and encoded: at most [`ONE_SHOT_PLAINTEXT`]
    /// before a zstd frame starts, [`COALESCED_PLAINTEXT`] after it and for gzip.
    pending: Vec<u8>,
}

/// Plaintext gathered before it is hashed and encoded in one call.
const COALESCED_PLAINTEXT: usize = 32 << 10;

/// Shortest run of lines [`RecordEncoder::write_lines`] encodes where it lies instead of
/// gathering it: long enough that the calls into the hash and zstd cost little per byte (a run
/// is at most one downloaded chunk, about 16 KiB: one TLS record).
const DIRECT_LINES_MIN: usize = 4 << 10;

/// Plaintext a zstd object gathers before its frame starts (zstd's block size). An object no
/// longer than this (the records of a small blob) is compressed in one call when it closes: it
/// borrows a zstd context only for that call instead of holding one across the awaits of its
/// download, and zstd compresses it in one pass straight into the output, with tables sized for
/// it. On the small-blob records benchmark the frames of 32 concurrent downloads otherwise
/// outnumbered the idle contexts kept and new contexts were made all run long.
const ONE_SHOT_PLAINTEXT: usize = 128 << 10;

impl RecordEncoder {
    /// A fresh encoder for one object, at the codec's default level.
    pub fn new(compression: Compression) -> Result<Self, CompressError> {
        Self::at_level(compression, None)
    }

    /// A fresh encoder for one object at `level` (a source's `compression_level`, validated
    /// with the config: `Compression::accepts_level`), or the codec's default when `None`.
    pub fn at_level(compression: Compression, level: Option<i32>) -> Result<Self, CompressError> {
        let codec = match compression {
            Compression::Zstd => Codec::ZstdUnstarted,
            Compression::Gzip => Codec::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(
                    level
                        .and_then(|l| u32::try_from(l).ok())
                        .unwrap_or(GZIP_LEVEL),
                ),
            )),
            Compression::None => Codec::Plain(Vec::new()),
        };
        Ok(RecordEncoder {
            compression,
            level,
            codec,
            records: 0,
            plaintext_len: 0,
            hasher: Sha256::new(),
            taken: 0,
            pending: Vec::new(),
        })
    }

    /// A fresh encoder for the next object, with this one's codec and level.
    pub fn next_object(&self) -> Result<Self, CompressError> {
        Self::at_level(self.compression, self.level)
    }

    /// zstd level of the frame this object starts (when it is zstd).
    fn zstd_level(&self) -> i32 {
        self.level.unwrap_or(ZSTD_LEVEL)
    }

    /// The codec.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// `Content-Encoding` of the object, `None` when uncompressed.
    pub fn content_encoding(&self) -> Option<&'static str> {
        content_encoding(self.compression)
    }

    /// Extension for the object name (`jsonl.zst`, `jsonl.gz`, `jsonl`).
    pub fn extension(&self) -> &'static str {
        extension(self.compression)
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Uncompressed bytes written so far (what `batch_max_bytes` budgets are compared with).
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Writes one record followed by `\n` (the record must not contain its terminator).
    ///
    /// Records for a codec are gathered into [`COALESCED_PLAINTEXT`] first (a zstd object's
    /// first [`ONE_SHOT_PLAINTEXT`]) and reach the hash and the codec in one call: per record,
    /// two calls into zstd and two hash updates cost about a tenth of the codec's time on
    /// ~600-byte diagnostic-log lines.
    pub fn write_record(&mut self, record: &[u8]) -> Result<(), CompressError> {
        self.plaintext_len += record.len() as u64 + 1;
        self.records += 1;
        if let Codec::Plain(_) = self.codec {
            // the output is the plaintext itself: nothing to gain from gathering
            self.encode(record)?;
            return self.encode(b"\n");
        }
        let gather = match self.codec {
            Codec::ZstdUnstarted => ONE_SHOT_PLAINTEXT,
            _ => COALESCED_PLAINTEXT,
        };
        if self.pending.len() + record.len() + 1 > gather {
            self.flush_pending()?;
            if record.len() >= COALESCED_PLAINTEXT {
                // a long record goes straight through, so `pending` stays small
                self.encode(record)?;
                return self.encode(b"\n");
            }
        }
        if self.pending.capacity() == 0 {
            // once: growing it by doubling copied a small object's records twice more
            self.pending.reserve_exact(gather);
        }
        self.pending.extend_from_slice(record);
        self.pending.push(b'\n');
        Ok(())
    }

    /// Writes `count` records given as they are encoded: each followed by its `\n`, back to
    /// back (a run of lines lying so in a source chunk). The same as `count` calls of
    /// [`write_record`](Self::write_record), without copying the run when it is long enough to
    /// go to the hash and the codec as it is: once a zstd frame has started (an object's first
    /// [`ONE_SHOT_PLAINTEXT`] are still gathered) and for gzip, a run of at least
    /// [`DIRECT_LINES_MIN`] bytes is encoded from where it lies.
    pub fn write_lines(&mut self, lines: &[u8], count: u64) -> Result<(), CompressError> {
        debug_assert!(lines.is_empty() == (count == 0) && lines.last().is_none_or(|b| *b == b'\n'));
        self.plaintext_len += lines.len() as u64;
        self.records += count;
        match self.codec {
            Codec::Plain(_) => return self.encode(lines),
            Codec::ZstdUnstarted if self.pending.len() + lines.len() <= ONE_SHOT_PLAINTEXT => {
                self.gather(lines, ONE_SHOT_PLAINTEXT);
                return Ok(());
            }
            // the frame has started, or starts now with what was gathered
            _ => {}
        }
        if lines.len() >= DIRECT_LINES_MIN {
            self.flush_pending()?;
            return self.encode(lines);
        }
        if self.pending.len() + lines.len() > COALESCED_PLAINTEXT {
            self.flush_pending()?;
        }
        self.gather(lines, COALESCED_PLAINTEXT);
        Ok(())
    }

    /// Appends plaintext to `pending`, whose capacity is reserved once at `capacity`.
    fn gather(&mut self, plain: &[u8], capacity: usize) {
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(capacity.max(plain.len()));
        }
        self.pending.extend_from_slice(plain);
    }

    /// Hands the gathered records to the hash and the codec.
    fn flush_pending(&mut self) -> Result<(), CompressError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        let r = self.encode(&pending);
        pending.clear();
        self.pending = pending;
        r
    }

    /// Hashes plaintext and writes it through the codec.
    fn encode(&mut self, plain: &[u8]) -> Result<(), CompressError> {
        self.hasher.update(plain);
        let c = self.compression;
        if let Codec::ZstdUnstarted = self.codec {
            self.codec =
                Codec::Zstd(ZstdFrame::start(self.zstd_level()).map_err(|e| codec_err(c, e))?);
        }
        let r = match &mut self.codec {
            Codec::ZstdUnstarted => Ok(()),
            Codec::Zstd(f) => f.write(plain),
            Codec::Gzip(e) => e.write_all(plain),
            Codec::Plain(v) => {
                v.extend_from_slice(plain);
                Ok(())
            }
        };
        r.map_err(|e| codec_err(c, e))
    }

    /// Encoded bytes waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.buffer().len()
    }

    /// Capacity of the output buffer and of the records not yet encoded (for memory
    /// accounting).
    pub fn buffer_capacity(&self) -> usize {
        self.buffer().capacity() + self.pending.capacity()
    }

    fn buffer(&self) -> &Vec<u8> {
        static NOTHING_YET: Vec<u8> = Vec::new();
        match &self.codec {
            Codec::ZstdUnstarted => &NOTHING_YET,
            Codec::Zstd(f) => &f.out,
            Codec::Gzip(e) => e.get_ref(),
            Codec::Plain(v) => v,
        }
    }

    /// All buffered encoded bytes when there are at least `min_bytes` (one staged block),
    /// otherwise `None`. The codec keeps working state of its own (zstd level 1: about 1 MiB).
    pub fn take_ready(&mut self, min_bytes: usize) -> Option<Bytes> {
        let buf = match &mut self.codec {
            Codec::ZstdUnstarted => return None,
            Codec::Zstd(f) => &mut f.out,
            Codec::Gzip(e) => e.get_mut(),
            Codec::Plain(v) => v,
        };
        if buf.is_empty() || buf.len() < min_bytes {
            return None;
        }
        let out = std::mem::take(buf);
        self.taken += out.len() as u64;
        Some(Bytes::from(out))
    }

    /// Closes the stream and returns the remaining bytes with the object's totals.
    pub fn finish(mut self) -> Result<EncodedTail, CompressError> {
        let c = self.compression;
        if let Codec::ZstdUnstarted = self.codec {
            // the whole object is gathered: one frame in one call (`ONE_SHOT_PLAINTEXT`)
            self.hasher.update(&self.pending);
        } else {
            self.flush_pending()?;
        }
        let tail = match self.codec {
            // an object with no record is still one valid (empty) zstd frame
            Codec::ZstdUnstarted => ZstdFrame::start(self.zstd_level())
                .and_then(|f| f.finish_with(&self.pending))
                .map_err(|e| codec_err(c, e))?,
            Codec::Zstd(f) => f.finish_with(&[]).map_err(|e| codec_err(c, e))?,
            Codec::Gzip(e) => e.finish().map_err(|e| codec_err(c, e))?,
            Codec::Plain(v) => v,
        };
        Ok(EncodedTail {
            encoded_len: self.taken + tail.len() as u64,
            tail: Bytes::from(tail),
            records: self.records,
            plaintext_len: self.plaintext_len,
            plaintext_sha256: self.hasher.finalize().into(),
        })
    }
}

/// Idle zstd contexts kept for the next object (under 1 MiB each at level 1 with a 128 KiB
/// window: 976,409 bytes once used, 1,369,625 with level 1's own 512 KiB window).
const IDLE_ZSTD_CONTEXTS: usize = 8;

/// Output space made available before each call into zstd. zstd keeps what does not fit in its
/// own buffer and hands it over on the next call, so any size makes progress.
const ZSTD_OUTPUT_STEP: usize = 32 << 10;

/// zstd contexts between two objects. A context is about 1 MiB that zstd allocates through
/// the C allocator: making one per object cost page faults, a `cpuid` probe the VM traps and
/// fresh tables, about a tenth of a small-blob records run.
static IDLE_ZSTD: Mutex<Vec<zstd::zstd_safe::CCtx<'static>>> = Mutex::new(Vec::new());

/// One zstd frame at its object's level and [`ZSTD_WINDOW_LOG`], written straight into `out`
/// with a context borrowed from [`IDLE_ZSTD`] and given back (reset) when the frame is dropped.
struct ZstdFrame {
    /// The context; `None` only while being dropped.
    cctx: Option<zstd::zstd_safe::CCtx<'static>>,
    /// Encoded bytes not yet taken.
    out: Vec<u8>,
}

impl ZstdFrame {
    /// A frame at `level` on an idle context, or on a new one when none is idle. The level is
    /// set on every frame: an idle context keeps the level of the object it served last, which
    /// may be another source's.
    fn start(level: i32) -> std::io::Result<Self> {
        use zstd::zstd_safe::CParameter;
        let idle = IDLE_ZSTD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut cctx = match idle {
            Some(cctx) => cctx,
            None => {
                let mut cctx = zstd::zstd_safe::CCtx::try_create().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::OutOfMemory,
                        "zstd could not allocate a compression context",
                    )
                })?;
                // no content checksum (zstd's library default; `ZSTD_CONTENT_CHECKSUM`)
                cctx.set_parameter(CParameter::ChecksumFlag(ZSTD_CONTENT_CHECKSUM))
                    .map_err(zstd_error)?;
                cctx.set_parameter(CParameter::WindowLog(ZSTD_WINDOW_LOG))
                    .map_err(zstd_error)?;
                cctx
            }
        };
        // the window set above stays: zstd derives from the level only what was not set
        cctx.set_parameter(CParameter::CompressionLevel(level))
            .map_err(zstd_error)?;
        // and the match tables: the level's own, but never larger than the window can use
        // (0: the level's default), set on every frame so that no other level's setting stays
        let table_log = if level >= ZSTD_FIRST_LEVEL_OVER_TABLE_LOG {
            ZSTD_TABLE_LOG_MAX
        } else {
            0
        };
        cctx.set_parameter(CParameter::HashLog(table_log))
            .map_err(zstd_error)?;
        cctx.set_parameter(CParameter::ChainLog(table_log))
            .map_err(zstd_error)?;
        Ok(ZstdFrame {
            cctx: Some(cctx),
            out: Vec::new(),
        })
    }

    /// One call into zstd with room made for its output; returns zstd's result (for
    /// `end_stream`, the bytes it still has to flush).
    fn step(
        &mut self,
        call: impl FnOnce(
            &mut zstd::zstd_safe::CCtx<'static>,
            &mut zstd::zstd_safe::OutBuffer<'_, Vec<u8>>,
        ) -> zstd::zstd_safe::SafeResult,
    ) -> std::io::Result<usize> {
        if self.out.capacity() - self.out.len() < ZSTD_OUTPUT_STEP {
            self.out.reserve(ZSTD_OUTPUT_STEP);
        }
        let at = self.out.len();
        let cctx = self
            .cctx
            .as_mut()
            .expect("a zstd frame has its context until dropped");
        let mut output = zstd::zstd_safe::OutBuffer::around_pos(&mut self.out, at);
        call(cctx, &mut output).map_err(zstd_error)
    }

    /// Compresses `data` into the frame.
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut input = zstd::zstd_safe::InBuffer::around(data);
        while input.pos() < data.len() {
            self.step(|cctx, output| {
                cctx.compress_stream2(
                    output,
                    &mut input,
                    zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_continue,
                )
            })?;
        }
        Ok(())
    }

    /// Compresses `last` (possibly nothing) and ends the frame, returning its remaining bytes.
    /// On a frame that has compressed nothing yet, zstd then compresses `last` in one pass
    /// straight into the output (room for its worst case is made first), without copying it
    /// into its window, and with tables sized for its length.
    fn finish_with(mut self, last: &[u8]) -> std::io::Result<Vec<u8>> {
        self.out
            .reserve(zstd::zstd_safe::compress_bound(last.len()));
        let mut input = zstd::zstd_safe::InBuffer::around(last);
        loop {
            let left = self.step(|cctx, output| {
                cctx.compress_stream2(
                    output,
                    &mut input,
                    zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end,
                )
            })?;
            if left == 0 && input.pos() == last.len() {
                return Ok(std::mem::take(&mut self.out));
            }
        }
    }
}

impl Drop for ZstdFrame {
    fn drop(&mut self) {
        let Some(mut cctx) = self.cctx.take() else {
            return;
        };
        // a context reset cleanly (also one dropped mid-frame) serves the next object
        if cctx
            .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
            .is_ok()
        {
            let mut idle = IDLE_ZSTD
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < IDLE_ZSTD_CONTEXTS {
                idle.push(cctx);
            }
        }
    }
}

fn zstd_error(code: usize) -> std::io::Error {
    std::io::Error::other(zstd::zstd_safe::get_error_name(code))
}

fn codec_err(c: Compression, source: std::io::Error) -> CompressError {
    CompressError::Codec {
        compression: c.as_str(),
        source,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::io::Read;

    fn decode(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match c {
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(data)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Compression::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Compression::None => out.extend_from_slice(data),
        }
        out
    }

    /// A diagnostic-log-shaped JSON line, numbered `i` (shared with the batch tests).
    pub(crate) fn line(rng: &mut impl Rng, i: u64) -> String {
        format!(
            "{{\"time\":\"2026-11-27T13:{:02}:{:02}Z\",\"operationName\":\"VaultGet\",\"i\":{i},\"r\":{}}}",
            i % 60,
            i % 61,
            rng.gen::<u64>()
        )
    }

    /// Encodes `n` generated lines (seeded with `seed`), taking blocks of at least `block` bytes
    /// as they are ready: returns the whole object, the plaintext written and the encoder's tail.
    fn encode_lines(
        c: Compression,
        seed: u64,
        n: u64,
        block: usize,
    ) -> (Vec<u8>, Vec<u8>, EncodedTail) {
        encode_lines_at(c, None, seed, n, block)
    }

    /// [`encode_lines`] at a `compression_level`.
    fn encode_lines_at(
        c: Compression,
        level: Option<i32>,
        seed: u64,
        n: u64,
        block: usize,
    ) -> (Vec<u8>, Vec<u8>, EncodedTail) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut enc = RecordEncoder::at_level(c, level).unwrap();
        let mut expected = Vec::new();
        let mut object = Vec::new();
        for i in 0..n {
            let l = line(&mut rng, i);
            enc.write_record(l.as_bytes()).unwrap();
            expected.extend_from_slice(l.as_bytes());
            expected.push(b'\n');
            if let Some(b) = enc.take_ready(block) {
                assert!(b.len() >= block);
                object.extend_from_slice(&b);
            }
        }
        let tail = enc.finish().unwrap();
        object.extend_from_slice(&tail.tail);
        (object, expected, tail)
    }

    #[test]
    fn round_trip_each_codec() {
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let (object, expected, tail) = encode_lines(c, 1, 20_000, 64 * 1024);
            assert_eq!(decode(c, &object), expected, "{c:?}");
            assert_eq!(tail.records, 20_000);
            assert_eq!(tail.plaintext_len, expected.len() as u64);
            assert_eq!(tail.encoded_len, object.len() as u64);
            let digest: [u8; 32] = Sha256::digest(&expected).into();
            assert_eq!(tail.plaintext_sha256, digest);
            if c != Compression::None {
                assert!(object.len() * 2 < expected.len(), "{c:?} did not compress");
            }
        }
    }

    /// Records around and past the gathering size, mixed with short ones, come out whole and in
    /// order, with the hash and length of exactly what was written.
    #[test]
    fn long_and_short_records_interleaved_round_trip() {
        let sizes = [
            10,
            COALESCED_PLAINTEXT - 1,
            COALESCED_PLAINTEXT,
            3,
            COALESCED_PLAINTEXT + 1,
            5 * COALESCED_PLAINTEXT,
            0,
            COALESCED_PLAINTEXT / 2,
            COALESCED_PLAINTEXT / 2,
            7,
        ];
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let mut enc = RecordEncoder::new(c).unwrap();
            let mut expected = Vec::new();
            let mut object = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let record: Vec<u8> = (0..*n).map(|k| b'a' + ((k * 7 + i) % 26) as u8).collect();
                enc.write_record(&record).unwrap();
                expected.extend_from_slice(&record);
                expected.push(b'\n');
                assert_eq!(enc.plaintext_len(), expected.len() as u64);
                if let Some(b) = enc.take_ready(1) {
                    object.extend_from_slice(&b);
                }
            }
            let tail = enc.finish().unwrap();
            object.extend_from_slice(&tail.tail);
            assert_eq!(decode(c, &object), expected, "{c:?}");
            assert_eq!(tail.records, sizes.len() as u64);
            let digest: [u8; 32] = Sha256::digest(&expected).into();
            assert_eq!(tail.plaintext_sha256, digest, "{c:?}");
        }
    }

    /// `compression_level` reaches the codec: a higher level makes a smaller object, a negative
    /// zstd level a larger one, and each decodes to the same records. zstd contexts are pooled
    /// across sources, so every frame sets its own level: an object at level 1 made after one at
    /// 19 (whose context went back to the pool) is exactly the default level's object.
    #[test]
    fn compression_level_reaches_the_codec_and_each_pooled_frame_takes_its_own() {
        let at = |c, level| encode_lines_at(c, level, 5, 20_000, 64 * 1024);
        let (zstd_default, expected, _) = at(Compression::Zstd, None);
        let (zstd_19, _, tail_19) = at(Compression::Zstd, Some(19));
        let (zstd_1_after_19, _, _) = at(Compression::Zstd, Some(1));
        let (zstd_fast, _, _) = at(Compression::Zstd, Some(-5));
        for (level, object) in [(1, &zstd_default), (19, &zstd_19), (-5, &zstd_fast)] {
            assert_eq!(
                decode(Compression::Zstd, object),
                expected,
                "zstd level {level}"
            );
        }
        assert_eq!(
            tail_19.plaintext_sha256,
            <[u8; 32]>::from(Sha256::digest(&expected))
        );
        assert!(
            zstd_19.len() < zstd_default.len() && zstd_default.len() < zstd_fast.len(),
            "zstd sizes: level 19 {}, 1 {}, -5 {}",
            zstd_19.len(),
            zstd_default.len(),
            zstd_fast.len()
        );
        assert!(
            zstd_1_after_19 == zstd_default,
            "a level-1 object after a level-19 one is {} bytes, not the default's {}",
            zstd_1_after_19.len(),
            zstd_default.len()
        );

        let (gzip_default, _, _) = at(Compression::Gzip, None);
        let (gzip_9, _, _) = at(Compression::Gzip, Some(9));
        assert_eq!(decode(Compression::Gzip, &gzip_9), expected);
        assert!(
            gzip_9.len() < gzip_default.len(),
            "gzip level 9 {} bytes, default {}",
            gzip_9.len(),
            gzip_default.len()
        );
    }

    /// A frame at a high `compression_level` keeps its match tables within what the 128 KiB
    /// window can use (`ZSTD_TABLE_LOG_MAX`): zstd's own level-19 tables took 83 MiB a context.
    #[test]
    fn a_high_zstd_level_keeps_its_context_small() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for level in [9, 19] {
            let mut enc = RecordEncoder::at_level(Compression::Zstd, Some(level)).unwrap();
            for i in 0..20_000 {
                enc.write_record(line(&mut rng, i).as_bytes()).unwrap();
            }
            let Codec::Zstd(frame) = &enc.codec else {
                panic!("level {level}: the frame has not started after 20,000 records");
            };
            let size = frame.cctx.as_ref().map_or(0, |c| c.sizeof());
            assert!(
                size < 4 << 20,
                "level {level}: the zstd context holds {size} bytes"
            );
        }
    }

    #[test]
    fn empty_object_is_a_valid_stream() {
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let mut enc = RecordEncoder::new(c).unwrap();
            assert_eq!(enc.take_ready(0), None);
            let tail = enc.finish().unwrap();
            assert!(decode(c, &tail.tail).is_empty());
            assert_eq!(tail.records, 0);
        }
    }

    /// Encoders share pooled zstd contexts: a frame abandoned half-way (an object given up)
    /// hands its context back reset, and every later frame is complete and keeps the
    /// context's parameters (here: the content checksum flag).
    #[test]
    fn a_zstd_context_given_back_mid_frame_serves_later_objects_cleanly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for round in 0..(2 * IDLE_ZSTD_CONTEXTS as u64) {
            let mut abandoned = RecordEncoder::new(Compression::Zstd).unwrap();
            for i in 0..5_000 {
                abandoned
                    .write_record(line(&mut rng, i).as_bytes())
                    .unwrap();
            }
            drop(abandoned);

            let mut enc = RecordEncoder::new(Compression::Zstd).unwrap();
            let mut expected = Vec::new();
            for i in 0..(100 + round * 50) {
                let l = line(&mut rng, i);
                enc.write_record(l.as_bytes()).unwrap();
                expected.extend_from_slice(l.as_bytes());
                expected.push(b'\n');
            }
            let tail = enc.finish().unwrap();
            // frame header descriptor, bit 2: Content_Checksum_flag (RFC 8878, 3.1.1.1.1)
            assert_eq!(&tail.tail[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
            assert_eq!(
                tail.tail[4] & 0b100 != 0,
                ZSTD_CONTENT_CHECKSUM,
                "round {round}: content checksum flag"
            );
            assert_eq!(
                decode(Compression::Zstd, &tail.tail),
                expected,
                "round {round}"
            );
        }
    }

    /// An object of up to `ONE_SHOT_PLAINTEXT` (a small blob's records) encodes nothing until it
    /// closes, then is one frame made in one call: its header carries the content length, which
    /// zstd writes only when the whole input came at once. One byte more streams as before.
    #[test]
    fn a_small_zstd_object_is_compressed_in_one_call() {
        for over in [false, true] {
            let mut enc = RecordEncoder::new(Compression::Zstd).unwrap();
            let mut expected = Vec::new();
            let mut write = |enc: &mut RecordEncoder, record: &[u8]| {
                enc.write_record(record).unwrap();
                expected.extend_from_slice(record);
                expected.push(b'\n');
            };
            let full = ONE_SHOT_PLAINTEXT / 1000;
            for i in 0..full {
                let record: Vec<u8> = (0..999).map(|k| b'a' + ((k * 7 + i) % 26) as u8).collect();
                write(&mut enc, &record);
            }
            // up to exactly ONE_SHOT_PLAINTEXT with its newline
            write(&mut enc, &vec![b'z'; ONE_SHOT_PLAINTEXT - full * 1000 - 1]);
            assert_eq!(enc.plaintext_len(), ONE_SHOT_PLAINTEXT as u64);
            assert_eq!(
                enc.buffered(),
                0,
                "nothing encoded before the object closes"
            );
            if over {
                write(&mut enc, b"");
            }
            let tail = enc.finish().unwrap();
            assert_eq!(decode(Compression::Zstd, &tail.tail), expected);
            let digest: [u8; 32] = Sha256::digest(&expected).into();
            assert_eq!(tail.plaintext_sha256, digest);
            let content_size = zstd::zstd_safe::get_frame_content_size(&tail.tail).unwrap();
            if over {
                assert_eq!(content_size, None, "a longer object streams");
            } else {
                assert_eq!(content_size, Some(ONE_SHOT_PLAINTEXT as u64));
            }
        }
    }

    /// A frame of several MiB needs no more than a 128 KiB window to decode: a reader limited to
    /// `ZSTD_WINDOW_LOG` (as `zstd -d --memory=128KB` is) reads it, one limited below fails.
    #[test]
    fn zstd_frames_decode_within_a_128_kib_window() {
        let (object, expected, _) = encode_lines(Compression::Zstd, 4, 60_000, 1 << 20);
        assert!(expected.len() > 4 << 20, "the frame spans many windows");
        let read_with = |window_log: u32| -> std::io::Result<Vec<u8>> {
            let mut d = zstd::stream::read::Decoder::new(&object[..])?;
            d.window_log_max(window_log)?;
            let mut out = Vec::new();
            d.read_to_end(&mut out)?;
            Ok(out)
        };
        assert_eq!(read_with(ZSTD_WINDOW_LOG).unwrap(), expected);
        assert!(
            read_with(ZSTD_WINDOW_LOG - 1).is_err(),
            "the limit is the window, not slack"
        );
    }

    #[test]
    fn headers_and_extensions() {
        assert_eq!(content_encoding(Compression::Zstd), Some("zstd"));
        assert_eq!(content_encoding(Compression::Gzip), Some("gzip"));
        assert_eq!(content_encoding(Compression::None), None);
        let e = RecordEncoder::new(Compression::Gzip).unwrap();
        assert_eq!(
            (e.extension(), e.content_encoding()),
            ("jsonl.gz", Some("gzip"))
        );
        assert_eq!(extension(Compression::Zstd), "jsonl.zst");
        assert_eq!(extension(Compression::None), "jsonl");
    }

    /// 100 MiB through each codec, drained in 1 MiB blocks: the output buffer never holds more
    /// than about two blocks, and the decoded stream hashes to the plaintext.
    #[test]
    fn memory_stays_bounded_over_100_mib() {
        const TOTAL: u64 = 100 << 20;
        const BLOCK: usize = 1 << 20;
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(2);
            let mut enc = RecordEncoder::new(c).unwrap();
            let mut max_capacity = 0;
            let mut blocks = Vec::new();
            let mut i = 0;
            while enc.plaintext_len() < TOTAL {
                let l = line(&mut rng, i);
                i += 1;
                enc.write_record(l.as_bytes()).unwrap();
                max_capacity = max_capacity.max(enc.buffer_capacity());
                if let Some(b) = enc.take_ready(BLOCK) {
                    blocks.push(b);
                }
            }
            assert!(
                max_capacity <= 2 * BLOCK + (256 << 10),
                "{c:?}: buffer reached {max_capacity} bytes"
            );
            let tail = enc.finish().unwrap();
            if c == Compression::Zstd {
                let mut all: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
                all.extend_from_slice(&tail.tail);
                let plain = decode(c, &all);
                let digest: [u8; 32] = Sha256::digest(&plain).into();
                assert_eq!(digest, tail.plaintext_sha256);
            }
        }
    }

    /// Runs of lines of every size, mixed with single records, encode to what the same records
    /// written one by one encode to: the same plaintext, count, length and hash, in every codec,
    /// also when the object's first run is longer than the one-shot threshold.
    #[test]
    fn runs_of_lines_encode_as_the_same_records_one_by_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            for round in 0..12u64 {
                let mut by_run = RecordEncoder::new(c).unwrap();
                let mut by_record = RecordEncoder::new(c).unwrap();
                let mut expected = Vec::new();
                let mut object = Vec::new();
                let mut i = 0;
                for _ in 0..(5 + round * 3) {
                    // a run of up to ~400 KiB, sometimes a single line or none
                    let want = match rng.gen_range(0..4) {
                        0 => 0,
                        1 => rng.gen_range(1..DIRECT_LINES_MIN),
                        2 => rng.gen_range(DIRECT_LINES_MIN..COALESCED_PLAINTEXT * 2),
                        _ => rng.gen_range(ONE_SHOT_PLAINTEXT..ONE_SHOT_PLAINTEXT * 3),
                    };
                    let (mut run, mut count) = (Vec::new(), 0u64);
                    while run.len() < want {
                        let l = line(&mut rng, i);
                        i += 1;
                        by_record.write_record(l.as_bytes()).unwrap();
                        run.extend_from_slice(l.as_bytes());
                        run.push(b'\n');
                        count += 1;
                    }
                    if rng.gen_bool(0.3) {
                        let l = line(&mut rng, i);
                        i += 1;
                        by_run.write_lines(&run, count).unwrap();
                        by_run.write_record(l.as_bytes()).unwrap();
                        by_record.write_record(l.as_bytes()).unwrap();
                        expected.extend_from_slice(&run);
                        expected.extend_from_slice(l.as_bytes());
                        expected.push(b'\n');
                    } else {
                        by_run.write_lines(&run, count).unwrap();
                        expected.extend_from_slice(&run);
                    }
                    if let Some(b) = by_run.take_ready(64 << 10) {
                        object.extend_from_slice(&b);
                    }
                    assert_eq!(by_run.records(), by_record.records());
                    assert_eq!(by_run.plaintext_len(), by_record.plaintext_len());
                }
                let (tail, reference) = (by_run.finish().unwrap(), by_record.finish().unwrap());
                object.extend_from_slice(&tail.tail);
                assert_eq!(decode(c, &object), expected, "{c:?} round {round}");
                assert_eq!(tail.encoded_len, object.len() as u64);
                assert_eq!(
                    (tail.records, tail.plaintext_len, tail.plaintext_sha256),
                    (
                        reference.records,
                        reference.plaintext_len,
                        reference.plaintext_sha256
                    ),
                    "{c:?} round {round}"
                );
            }
        }
    }
}
