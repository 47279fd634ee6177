//! Sources: reading customer data. Blob containers (listing, block blobs by ETag, append blobs
//! tailed by byte offset, ranged reads that resume) and Log Analytics query windows.
//!
//! Owns: the customer-side wire protocol and its error classes. Must not: decrypt (that is
//! `cmk`), write to the destination, or advance checkpoints.

pub mod blob;
pub mod partitions;

pub use blob::{BlobSource, RangeReader, SourceError};
