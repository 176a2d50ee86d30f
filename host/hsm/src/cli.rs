//! The command line's shape: clap structs only. Their doc comments are the `--help`
//! text; each subcommand is implemented in its own file under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sets up a developer's whole stack (Python packages and the services they need)
/// from one `hsm.yaml`.
#[derive(Debug, Parser)]
#[command(name = "hsm", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Run as if hsm was started in this folder (the one holding `hsm.yaml`).
    #[arg(short = 'C', long = "project-dir", value_name = "DIR", global = true, default_value = ".")]
    pub(crate) project_dir: PathBuf,

    /// Print only data and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// Also say which files were read.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,

    /// Read every registry file afresh instead of using the cache of checked
    /// registry files (in `$HSM_CACHE_DIR`, else `$XDG_CACHE_HOME/hsm`, else
    /// `~/.cache/hsm`).
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,

    /// When to use colours: `auto` uses them on terminals unless `NO_COLOR` is set.
    #[arg(long, value_name = "WHEN", global = true, default_value = "auto")]
    pub(crate) color: ColorChoice,
}

/// When to use colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// On terminals, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check `hsm.yaml`, its registries and `.env` files, and resolve the project,
    /// without printing the plan.
    Validate,

    /// Print the resolved project: each service with its kind, profile, params and
    /// the packages that need it, and each package with its source. Secrets are
    /// shown as the references written in the files, never as values.
    Plan(PlanArgs),

    /// Print the JSON Schema of `hsm.yaml` or of registry files, for editors.
    Schema(SchemaArgs),
}

/// Arguments of `hsm plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `hsm schema`.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Which file format.
    #[arg(value_enum, default_value = "project")]
    pub(crate) format: SchemaFormat,
}

/// A file format with a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemaFormat {
    /// `hsm.yaml`.
    Project,
    /// Registry files.
    Registry,
}
