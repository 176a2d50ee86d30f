//! The command line's shape: clap structs only. Their doc comments are the `--help`
//! text; each subcommand is implemented in its own file under `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

use crate::commands::completions;

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

    /// Say more: which files were read and each Docker operation (`-v`), each
    /// failed readiness probe and pull step (`-vv`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Compile third-party plugins afresh instead of using the cache of compiled
    /// plugins (in `$HSM_CACHE_DIR`, else `$XDG_CACHE_HOME/hsm`, else
    /// `~/.cache/hsm`).
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,

    /// When to use colours: `auto` uses them on terminals unless `NO_COLOR` is set.
    #[arg(long, value_name = "WHEN", global = true, default_value = "auto")]
    pub(crate) color: ColorChoice,

    /// How this run uses `hsm.lock` (set from the subcommand, not an option).
    #[arg(skip)]
    pub(crate) lock: LockUse,
}

/// How a run uses `hsm.lock`: `hsm sync` and `hsm lock` write it; other commands
/// resolve a registry it lacks for that run only.
#[derive(Clone, Debug, Default)]
pub(crate) struct LockUse {
    /// Write `hsm.lock` when it lacks a git registry or lists one no longer used.
    pub(crate) write: bool,
    /// The git registries to resolve again (`Some(empty)`: all of them).
    pub(crate) update: Option<Vec<String>>,
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
    /// Write a first `hsm.yaml` for the project folder: the project named after the
    /// folder, and the Python projects below it (folders with a `pyproject.toml`) as
    /// editable packages. An existing `hsm.yaml` is never overwritten.
    Init,

    /// Check `hsm.yaml`, its registries and `.env` files, and resolve the project,
    /// without printing the plan.
    Validate,

    /// Print the resolved project: each service with its kind, profile, params and
    /// the packages that need it, and each package with its source. Secrets are
    /// shown as the references written in the files, never as values.
    Plan(PlanArgs),

    /// Print the JSON Schema of `hsm.yaml` or of registry files, for editors.
    Schema(SchemaArgs),

    /// Write, check and list backend plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// Make the stack match `hsm.yaml`: start and configure the managed services'
    /// containers, wait until they are ready, and install the Python packages. Safe
    /// to run again: what already matches is left alone.
    Sync(SyncArgs),

    /// Resolve the git registries of `hsm.yaml` to commits and write them, with the
    /// sha256 of every file read, to `hsm.lock` (commit it). Later runs use the
    /// locked commits, from hsm's cache, without the network.
    Lock(LockArgs),

    /// Print the environment a package gets from its services (the project's own
    /// when no package is named). Secrets are shown as references unless
    /// `--reveal` is given.
    Env(EnvArgs),

    /// Run a command with a package's environment (values, not references), inside
    /// the project's Python environment when there is one. The command's exit code
    /// is hsm's.
    Run(RunArgs),

    /// Run one of a package's tasks now (whatever its `on`), with the package's
    /// environment, in the project's Python environment, from the package's
    /// folder. Its exit code is hsm's.
    Task(TaskArgs),

    /// Show the logs of the project's containers (all, or those of the services
    /// named), merged in time order, each line prefixed with its service and
    /// container. Secrets are redacted.
    Logs(LogsArgs),

    /// Show what runs, whether it is ready, and how it differs from `hsm.yaml`.
    Status(StatusArgs),

    /// Write the stack for another engine: a Compose file, or Kubernetes manifests.
    /// The same checks as `hsm sync`; no secret value is written (secrets become
    /// variables, listed when the export is written).
    #[command(subcommand)]
    Export(ExportCommand),

    /// Stop and remove what hsm created for this project (containers, network; with
    /// `--volumes`, the data too).
    Down(DownArgs),

    /// Print a completion script for SHELL, for subcommands, options and their
    /// values.
    ///
    /// Install it where your shell looks for completions, for instance
    /// `hsm completions bash > ~/.local/share/bash-completion/completions/hsm`,
    /// `hsm completions zsh > ~/.zfunc/_hsm` (with `~/.zfunc` in `fpath`) or
    /// `hsm completions fish > ~/.config/fish/completions/hsm.fish`.
    Completions(CompletionsArgs),

    /// Print the manual page hsm(1), in roff.
    #[command(hide = true)]
    Man,
}

/// Arguments of `hsm completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,

    /// Print instead a short script that asks hsm at each completion, which then
    /// also offers the names of the project's packages and services (of `-C`'s
    /// folder, else the current one). Load it from the shell's startup file so it
    /// follows upgrades of hsm: `source <(hsm completions bash --dynamic)`.
    #[arg(long)]
    pub(crate) dynamic: bool,
}

/// Arguments of `hsm sync`.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Print a JSON summary of what changed on stdout.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also remove this project's volumes that no service uses any more (their data
    /// is lost).
    #[arg(long)]
    pub(crate) prune_volumes: bool,

    /// Wait at most this many seconds for each service to become ready (default:
    /// what the service's plugin says, usually 60 or 120).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub(crate) wait_timeout: Option<u32>,
}

/// Arguments of `hsm lock`.
#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// Resolve the refs again and lock what they name now: those of the REGISTRY
    /// entries given (as written in `registries`, or their URL), else every git
    /// registry's.
    #[arg(long)]
    pub(crate) update: bool,

    /// With `--update`, the registries to update (default: all).
    #[arg(value_name = "REGISTRY", requires = "update")]
    pub(crate) registries: Vec<String>,
}

/// Arguments of `hsm env`.
#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// The package (default: the project itself, for services listed in `hsm.yaml`).
    #[arg(add = ArgValueCandidates::new(completions::packages))]
    pub(crate) package: Option<String>,

    /// How to print the variables.
    #[arg(long, value_enum, default_value = "dotenv")]
    pub(crate) format: EnvFormat,

    /// Print secret values instead of references. They go to stdout only; mind
    /// where you paste or redirect them.
    #[arg(long)]
    pub(crate) reveal: bool,
}

/// Output formats of `hsm env`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EnvFormat {
    /// `KEY=value` lines, for `.env` files and `docker run --env-file`.
    Dotenv,
    /// `export KEY='value'` lines, for `eval`.
    Shell,
    /// One JSON object.
    Json,
}

/// Arguments of `hsm run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The package whose environment the command gets.
    #[arg(add = ArgValueCandidates::new(completions::packages))]
    pub(crate) package: String,

    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// Arguments of `hsm status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Exit with 3 when the project is out of sync (something `hsm sync` would
    /// change, or a service that is not ready), as `git diff --exit-code` does
    /// for differences; for scripts and CI.
    #[arg(long)]
    pub(crate) exit_code: bool,
}

/// Arguments of `hsm down`.
#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    /// Also remove the project's volumes (its databases' data).
    #[arg(long)]
    pub(crate) volumes: bool,

    /// Remove what a project left on the engine from FOLDER, a folder that no longer
    /// holds it (the project was moved or deleted), instead of this folder's.
    #[arg(long, value_name = "FOLDER")]
    pub(crate) from_folder: Option<std::path::PathBuf>,
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

/// `hsm plugin` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Create a plugin crate that uses only hsm's SDK and builds for `wasm32-wasip2`.
    New(PluginNewArgs),

    /// Say whether a file is a valid hsm plugin: the WIT version it targets, what it
    /// declares (kinds, parameters, capabilities) and its sha256, to pin it with.
    Check(PluginCheckArgs),

    /// List the plugins the project can use (bundled and declared), where from, and
    /// what each is granted.
    List(PluginListArgs),

    /// Re-pin a rebuilt plugin: write its new sha256 wherever the project pins the
    /// plugin of that name (the registry that declares it and the grant in
    /// `hsm.yaml`), so that one command replaces editing two files by hand.
    /// Review what it declares first (`hsm plugin check`): the grant then applies
    /// to this build.
    Pin(PluginPinArgs),
}

/// Arguments of `hsm plugin new`.
#[derive(Debug, Args)]
pub(crate) struct PluginNewArgs {
    /// The plugin's name, which is also the service kind it serves (lowercase letters,
    /// digits and `-`).
    pub(crate) name: String,

    /// The folder to create (default: `./NAME`).
    #[arg(long, value_name = "DIR")]
    pub(crate) path: Option<PathBuf>,

    /// Depend on the `sdk/` folder of an hsm checkout (a path dependency) instead of
    /// `hsm-sdk` from crates.io at this hsm's version.
    #[arg(long = "sdk-path", alias = "sdk", value_name = "DIR")]
    pub(crate) sdk_path: Option<PathBuf>,
}

/// Arguments of `hsm plugin check`.
#[derive(Debug, Args)]
pub(crate) struct PluginCheckArgs {
    /// The component (`.wasm`) to check.
    pub(crate) file: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `hsm plugin list`.
#[derive(Debug, Args)]
pub(crate) struct PluginListArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The targets of `hsm export`.
#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// Write a Compose file (`docker compose up -d` runs it): each container a
    /// service with its healthcheck, each exec a one-shot service, each package's
    /// environment in `env/<package>.env`.
    Compose(ExportComposeArgs),

    /// Write Kubernetes manifests for `kubectl apply -k`: a StatefulSet or
    /// Deployment and a Service per managed service, a ConfigMap per package, and
    /// `create-secrets.sh`, which creates the Secrets from your variables.
    Kubernetes(ExportKubernetesArgs),
}

/// Arguments of `hsm export compose`.
#[derive(Debug, Args)]
pub(crate) struct ExportComposeArgs {
    /// The Compose file to write (its folder gets `env/` and `files/` too)
    /// [default: hsm-export/compose/compose.yaml in the project folder].
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Also run a package as a service of the stack, from its image, with its
    /// environment, once the services it uses are ready. Repeatable.
    #[arg(long = "package", value_name = "NAME=IMAGE")]
    pub(crate) packages: Vec<String>,

    /// Also write the values of the variables the export needs (secrets
    /// included) to this file, readable by you only, for `docker compose
    /// --env-file FILE`. Keep it out of version control.
    #[arg(long, value_name = "FILE")]
    pub(crate) values: Option<PathBuf>,
}

/// Arguments of `hsm export kubernetes`.
#[derive(Debug, Args)]
pub(crate) struct ExportKubernetesArgs {
    /// The folder to write [default: hsm-export/kubernetes in the project folder].
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,

    /// The namespace of every object (default: kubectl's current one).
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Option<String>,

    /// Also write the Secrets with their values to this file, readable by you
    /// only, for `kubectl apply -f FILE` (instead of `create-secrets.sh`). Keep
    /// it out of version control.
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_values: Option<PathBuf>,
}

/// Arguments of `hsm task`.
#[derive(Debug, Args)]
pub(crate) struct TaskArgs {
    /// The package.
    #[arg(add = ArgValueCandidates::new(completions::packages))]
    pub(crate) package: String,
    /// The task's name.
    pub(crate) name: String,
}

/// Arguments of `hsm logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The services whose logs to show (default: all of the project's).
    #[arg(value_name = "SERVICE", add = ArgValueCandidates::new(completions::services))]
    pub(crate) services: Vec<String>,

    /// Keep following the logs until Ctrl-C (containers recreated meanwhile are
    /// followed too).
    #[arg(short, long)]
    pub(crate) follow: bool,

    /// Only lines logged in the last DURATION (`90s`, `15m`, `2h`, `1d`).
    #[arg(long, value_name = "DURATION")]
    pub(crate) since: Option<String>,

    /// Only the last N lines of each container.
    #[arg(short = 'n', long, value_name = "N")]
    pub(crate) tail: Option<u64>,
}

/// Arguments of `hsm plugin pin`.
#[derive(Debug, Args)]
pub(crate) struct PluginPinArgs {
    /// The rebuilt component (`.wasm`).
    pub(crate) file: PathBuf,
}
