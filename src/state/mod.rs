//! State: checkpoints per (tenant, source, object), quarantine rows, kept in SQLite (WAL) under
//! `agent.state_dir`, behind a small trait so a blob-backed store with leases can replace it.
//!
//! Owns: durability of progress. Must not: know about Azure, HTTP or tenants' credentials.
