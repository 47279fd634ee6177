//! The `ferry` binary: command-line parsing and glue only; everything else lives in the library.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc malloc: Ferry allocates per request (headers, URLs, small bodies),
/// and this cut its CPU per GiB on small blobs by about 15 % (docs/BENCHMARKS.md). Built without
/// transparent huge pages (the `no_thp` feature in Cargo.toml, checked by `tests/ops_observe.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
