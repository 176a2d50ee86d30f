//! Loading and resolving the project, shared by the subcommands that need it.

use std::collections::{BTreeSet, HashMap};

use hsm_config::LoadOptions;
use hsm_model::Sources;
use hsm_resolve::{Resolution, ResolveOptions};

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;

/// The service kinds this build of hsm has plugins for.
pub(crate) const KNOWN_KINDS: [&str; 3] = ["chunker", "postgres", "qdrant"];

/// Loads and resolves the project named by the global options.
pub(crate) fn resolve(global: &GlobalArgs, out: &Output) -> Result<(Sources, Resolution), Failure> {
    let env: HashMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let options = LoadOptions { project_dir: global.project_dir.clone(), env };
    let mut sources = Sources::new();
    let config = match hsm_config::load(&options, &mut sources) {
        Ok(c) => c,
        Err(diags) => return Err(Failure::Input(sources, diags)),
    };
    for (_, file) in sources.iter() {
        out.verbose(&format!("read {}", file.display));
    }
    let resolve_options =
        ResolveOptions { known_kinds: KNOWN_KINDS.iter().map(|k| (*k).to_string()).collect::<BTreeSet<_>>() };
    match hsm_resolve::resolve(&config, &sources, &resolve_options) {
        Ok(r) => Ok((sources, r)),
        Err(diags) => Err(Failure::Input(sources, diags)),
    }
}
