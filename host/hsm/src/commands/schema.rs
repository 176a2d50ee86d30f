//! `hsm schema`: print the JSON Schema of a file format.

use hsm_config::schema::{Which, json_schema};

use crate::Failure;
use crate::cli::{SchemaArgs, SchemaFormat};
use crate::output::Output;

/// Runs `hsm schema`.
pub(crate) fn run(args: &SchemaArgs, out: &Output) -> Result<(), Failure> {
    let which = match args.format {
        SchemaFormat::Project => Which::Project,
        SchemaFormat::Registry => Which::Registry,
    };
    out.data(&json_schema(which))
}
