//! hsm's input: the `hsm.yaml` project file and the registry files, parsed with their
//! locations, checked, and merged into one [`Config`]; `.env` files; and Docker
//! Compose-style interpolation, parsed when files load and resolved only for what a
//! project uses.
//!
//! - [`file`](mod@file): the serde model of both formats, which also gives their JSON Schema.
//! - [`load()`]: reads a project and its registries into a [`Config`].
//! - [`interp`], [`dotenv`], [`env`](mod@env): interpolation and where its variables come from.

mod check;
pub mod config;
pub mod dotenv;
pub mod env;
pub mod file;
pub mod git;
pub mod git_registry;
pub mod interp;
pub mod load;
pub mod lock;
pub mod names;
pub mod schema;
pub mod spanned;
mod yaml_error;
pub mod yaml_out;

pub use config::{
    Config, Implies, NameRef, PackageDef, PackageRequest, ParamNode, Params, PluginGrant, ProfileDef, ProfileSettings,
    Project, ServiceDef, ServiceRequest, SourceDef, StrParam, TaskDef,
};
pub use env::Environment;
pub use file::Mode;
pub use git_registry::GitOptions;
pub use load::{BUNDLED, LoadOptions, PROJECT_FILE, load, load_lenient};
pub use names::{KindName, PackageName, ProfileName, ProjectName, ServiceName, TaskName};
pub use spanned::{Loc, Spanned};
pub use yaml_error::did_you_mean;
