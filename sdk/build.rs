//! Exists because `links` (Cargo.toml) needs a build script: it keeps two versions
//! of the SDK, which would both export the component's allocators, out of one
//! plugin. There is nothing to build.

fn main() {}
