//! Owned by sim-core (see lib.rs).
