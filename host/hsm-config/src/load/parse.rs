//! Parsing a project's YAML files: serde-saphyr with hsm's options, and a
//! registry's files parsed and checked on several threads when there is enough.

use std::path::PathBuf;
use std::sync::Arc;

use hsm_model::{Diagnostic, FileId};
use rayon::prelude::*;
use serde::de::DeserializeOwned;

use crate::check::FileCtx;
use crate::config::{PackageDef, PluginDef, ProfileDef, ServiceDef};
use crate::file::RegistryFile;
use crate::yaml_error::{self, FileKind};

/// A registry file read but not parsed yet.
pub(super) struct RegistryText {
    pub(super) id: FileId,
    pub(super) display: String,
    pub(super) text: Arc<str>,
    /// The file (`None` for the bundled registry).
    pub(super) path: Option<PathBuf>,
    /// The folder paths in the file are relative to (`None` for the bundled registry).
    pub(super) base: Option<PathBuf>,
}

/// Reads a file with serde-saphyr, in YAML 1.2's core schema: only `true` and
/// `false` are booleans, so `country: NO` or `debug: on` in params stay the strings
/// they look like. We render snippets ourselves.
pub(super) fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        // serde-saphyr's default budget (250,000 nodes) refused a registry of 10,000
        // packages in one file (3.6 MB). Files are the user's own, so the limits are
        // a bound on work, not on size: about 150,000 packages in one file.
        budget: serde_saphyr::budget! { max_nodes: MAX_NODES, max_events: 3 * MAX_NODES },
    };
    serde_saphyr::from_str_with_options(text, options)
}

/// Parses and checks a registry's files, on every core when there are several and
/// enough YAML: parsing is most of a large registry's load (a registry of 10,000
/// packages in ten files parses in ~260 ms on one core), while a small one (the
/// bundled registry's 2.5 KB) parses in less time than threads take to start, and
/// on a machine whose cores are loading plugins meanwhile. Files are split file by
/// file (rayon, which wasmtime already brings) and a thread that is done takes
/// work from the others, so a thread with the bigger files does not hold up the
/// rest; the results come back
/// in the files' order, so the definitions and their diagnostics are those one
/// thread gives.
pub(super) fn parse_all(files: &[RegistryText]) -> Vec<FileDefs> {
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    if files.len() < 2 || bytes < PARALLEL_PARSE_BYTES {
        return files.iter().map(registry_defs).collect();
    }
    files.par_iter().with_max_len(1).map(registry_defs).collect()
}

/// How much registry YAML makes parsing it on several threads worth their start
/// (about 6 ms of parsing on one core).
const PARALLEL_PARSE_BYTES: usize = 64 << 10;

/// The most nodes (scalars, lists and maps) serde-saphyr reads in one file.
const MAX_NODES: usize = 5_000_000;

/// What one registry file defines, checked, with the problems found in it.
pub(super) struct FileDefs {
    pub(super) packages: Vec<PackageDef>,
    pub(super) services: Vec<ServiceDef>,
    pub(super) profiles: Vec<ProfileDef>,
    pub(super) plugins: Vec<PluginDef>,
    pub(super) diags: Vec<Diagnostic>,
    pub(super) incomplete: bool,
}

/// Parses and checks one registry file.
fn registry_defs(f: &RegistryText) -> FileDefs {
    let mut cx = FileCtx::new(f.id, &f.text, f.base.as_deref());
    // A registry file with nothing in it (yet) defines nothing.
    let (packages, services, profiles, plugins) = if !has_content(&f.text) {
        Default::default()
    } else {
        match parse_yaml::<RegistryFile>(&f.text) {
            Ok(reg) => cx.registry_file(reg, &f.display),
            Err(e) => {
                cx.diags.push(yaml_error::diagnostic(&e, f.id, &f.text, FileKind::Registry));
                cx.incomplete = true;
                Default::default()
            }
        }
    };
    FileDefs { packages, services, profiles, plugins, diags: cx.diags, incomplete: cx.incomplete }
}

/// Whether a YAML text holds anything but blank lines, comments and `---`.
pub(super) fn has_content(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| !l.is_empty() && !l.starts_with('#') && l != "---")
}
