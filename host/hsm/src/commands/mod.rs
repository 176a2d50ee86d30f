//! One module per subcommand.

pub(crate) mod completions;
pub(crate) mod down;
pub(crate) mod env;
pub(crate) mod export;
pub(crate) mod init;
pub(crate) mod lock;
pub(crate) mod logs;
pub(crate) mod man;
pub(crate) mod plan;
pub(crate) mod plugin;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod task;
pub(crate) mod validate;
