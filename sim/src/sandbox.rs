//! Owned by sim-kv-gateway (see lib.rs).
