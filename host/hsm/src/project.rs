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
    // Problems local to one value do not stop resolution, so one run reports them
    // together with what resolving finds.
    let (config, mut diags) = hsm_config::load_lenient(&options, &mut sources);
    let Some(config) = config else { return Err(Failure::Input(sources, diags)) };
    for (_, file) in sources.iter() {
        out.verbose(&format!("read {}", file.display));
    }
    let resolve_options =
        ResolveOptions { known_kinds: KNOWN_KINDS.iter().map(|k| (*k).to_string()).collect::<BTreeSet<_>>() };
    let resolved = hsm_resolve::resolve(&config, &sources, &resolve_options);
    // The process ends soon after: freeing a large registry's tree would only cost time.
    std::mem::forget(config);
    match resolved {
        Ok(r) if diags.is_empty() => Ok((sources, r)),
        Ok(_) => Err(Failure::Input(sources, diags)),
        Err(more) => {
            diags.0.extend(more.0);
            Err(Failure::Input(sources, diags))
        }
    }
}
