//! The `gumvault` binary: parses the command line, runs the library, maps errors to exit codes.

fn main() {
    std::process::exit(gumvault::cli::run());
}
