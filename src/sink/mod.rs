//! Sink: destination naming (deterministic from tenant, source, source object and byte range),
//! path templates and sanitising, records batching, compression, and the upload of one object to
//! provider storage as staged blocks with a single commit.
//!
//! Owns: what lands in provider storage and under which name. Must not: read checkpoints or
//! decide what to ship next.

pub mod batches;
pub mod compress;
pub mod naming;
pub mod records;
pub mod upload;

pub use batches::BatchEncoder;
pub use compress::{
    content_encoding, extension, CompressError, EncodedTail, RecordEncoder, JSONL_CONTENT_TYPE,
};
pub use naming::{
    sanitize_blob_name, sanitize_blob_name_within, NameContext, PathTemplate, TemplateError,
};
pub use records::{
    BatchRange, EndKind, RecordSplitter, SplitEvent, SplitStats, SplitSummary, SplitterConfig,
};
pub use upload::{CommitInfo, Destination, ObjectUpload, SinkError};
