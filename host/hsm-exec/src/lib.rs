//! Execution: makes reality match a [`hsm_plan::Plan`]. Containers go through the
//! Docker API, Python packages through uv; readiness probes gate the environment
//! handed to packages; a small state file under `.hsm/` (never holding a secret)
//! keeps runs idempotent.

pub mod docker;
mod down;
pub mod env;
pub mod error;
pub mod logs;
pub mod names;
mod plugin_files;
mod probe;
pub mod refs;
pub mod report;
mod spec;
pub mod state;
mod status;
pub mod sync;
pub mod tasks;
pub mod uv;
