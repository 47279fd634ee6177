//! `ferry-sim` binary (owned by sim-core).
fn main() {}
