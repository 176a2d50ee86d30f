//! Execution: makes reality match a [`hsm_plan::Plan`]. Containers go through the
//! Docker API, Python packages through uv; readiness probes gate the environment
//! handed to packages; a small state file under `.hsm/` (never holding a secret)
//! keeps runs idempotent.

pub mod keys;
pub mod uv;
