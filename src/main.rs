//! The `ferry` binary: command-line parsing and glue only; everything else lives in the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
