//! End-to-end tests of `hsm sync`, `env`, `run`, `status` and `down` against the real
//! Docker engine, with the test images of `tests/images/` (built by `scripts/test`).
//! Every test has a project of its own (unique name, temporary folder) and removes
//! everything it created when it ends, pass or fail, so they run in parallel.

mod escapes;
mod export;
mod faults;
mod fileserver;
mod leak;
mod registry;
mod scenarios;
mod stack;
mod tasks;
mod third_party;
mod urls;
