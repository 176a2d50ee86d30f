//! The `hsm` command line: parses arguments and renders what the library crates return.

fn main() {}
