//! `hsm export compose|kubernetes`: plans the project as `hsm sync` would (same
//! checks, same errors), with its services reached by name inside the exported
//! stack, and writes what `hsm-export` renders. Files are written only when the
//! whole export succeeded; a file hsm did not write is never replaced.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hsm_export::{ComposeOptions, GENERATED, KubeOptions, Source, Variable};
use hsm_model::{Diagnostic, Encoding, ResolveRefs, Sensitive, Sources, Text};
use hsm_planner::Reach;

use crate::Failure;
use crate::cli::{ExportCommand, ExportComposeArgs, ExportKubernetesArgs, GlobalArgs};
use crate::engine;
use crate::output::Output;
use crate::project::{self, Planned};

/// Runs `hsm export`.
pub(crate) fn run(global: &GlobalArgs, command: &ExportCommand, out: &Output) -> Result<(), Failure> {
    match command {
        ExportCommand::Compose(args) => compose(global, args, out),
        ExportCommand::Kubernetes(args) => kubernetes(global, args, out),
    }
}

fn compose(global: &GlobalArgs, args: &ExportComposeArgs, out: &Output) -> Result<(), Failure> {
    let mut packages = Vec::new();
    for p in &args.packages {
        match p.split_once('=') {
            Some((name, image)) if !name.is_empty() && !image.is_empty() => {
                packages.push((name.to_string(), image.to_string()))
            }
            _ => {
                return Err(usage(
                    format!("`--package {p}` is not NAME=IMAGE"),
                    "for example `--package api=registry.example/api:1.4`",
                ));
            }
        }
    }
    let planned = project::plan_for(global, out, Reach::ByName(str::to_string))?;
    for (name, _) in &packages {
        crate::commands::env::consumer(&planned, Some(name))?;
    }
    let export =
        hsm_export::compose(&planned.plan, &ComposeOptions { packages }).map_err(|e| engine::failure(out, &e))?;
    let file = args.output.clone().unwrap_or_else(|| global.project_dir.join("hsm-export/compose/compose.yaml"));
    if file.is_dir() || file.as_os_str().to_string_lossy().ends_with('/') {
        return Err(usage(
            format!("`-o {}` is a folder; it takes the Compose file's path", file.display()),
            "write `-o DIR/compose.yaml`",
        ));
    }
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (rel, text) in &export.files {
        let path = if rel == "compose.yaml" { file.clone() } else { dir.join(rel) };
        files.insert(path, text.clone());
    }
    for (consumer, vars) in &export.env {
        let mut text = format!(
            "# {GENERATED} compose` from project `{}`: the environment of `{consumer}`.\n",
            planned.plan.project
        );
        text.push_str(&env_file(vars));
        files.insert(dir.join("env").join(format!("{consumer}.env")), text);
    }
    let values = match &args.values {
        Some(path) => Some((path, values_file(&planned, &export.variables, out)?)),
        None => None,
    };
    write_all(&file, &dir, &files, &[], out)?;
    if let Some((path, text)) = values {
        write_private(path, &text)?;
        out.status(&format!(
            "wrote the variables' values to {} (readable by you only; keep it out of version control)",
            path.display()
        ));
    }
    out.status(&format!("wrote {} ({} files in {})", file.display(), files.len(), dir.display()));
    variables_to_set(&export.variables, out);
    // Compose names a project after the file's folder: name it after this one.
    out.status(&format!("run it: docker compose -p {} -f {} up -d", planned.plan.project, file.display()));
    Ok(())
}

fn kubernetes(global: &GlobalArgs, args: &ExportKubernetesArgs, out: &Output) -> Result<(), Failure> {
    if let Some(ns) = &args.namespace
        && (ns.is_empty() || hsm_export::dns(ns) != *ns || ns.len() > 63)
    {
        return Err(usage(
            format!("`{ns}` is not a Kubernetes namespace name"),
            "lowercase letters, digits and `-`, at most 63",
        ));
    }
    let planned = project::plan_for(global, out, Reach::ByName(hsm_export::dns))?;
    let options = KubeOptions { namespace: args.namespace.clone() };
    let (export, secrets) = hsm_export::kubernetes(&planned.plan, &options).map_err(|e| engine::failure(out, &e))?;
    let dir = args.output.clone().unwrap_or_else(|| global.project_dir.join("hsm-export/kubernetes"));
    let files: BTreeMap<PathBuf, String> = export.files.iter().map(|(rel, t)| (dir.join(rel), t.clone())).collect();
    let secret_values = match &args.secret_values {
        Some(path) => Some((path, secret_manifests(&planned, &secrets, &options, out)?)),
        None => None,
    };
    let scripts: Vec<PathBuf> = export.scripts.iter().map(|s| dir.join(s)).collect();
    write_all(&dir.join("kustomization.yaml"), &dir, &files, &scripts, out)?;
    out.status(&format!("wrote {} files to {}", files.len(), dir.display()));
    if let Some((path, text)) = secret_values {
        write_private(path, &text)?;
        out.status(&format!(
            "wrote the Secrets with their values to {} (readable by you only; keep it out of version control)",
            path.display()
        ));
        out.status(&format!("apply: kubectl apply -f {} && kubectl apply -k {}", path.display(), dir.display()));
    } else {
        variables_to_set(&export.variables, out);
        out.status(&format!(
            "apply: sh {} && kubectl apply -k {}",
            dir.join("create-secrets.sh").display(),
            dir.display()
        ));
    }
    Ok(())
}

/// A package's variables as an env file Compose v2 interpolates (`env_file`):
/// references stay `${…}`, values that need it double-quoted with `\\`, `"` and
/// line breaks escaped.
fn env_file(vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in vars {
        if v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c)) {
            out.push_str(&format!("{k}={v}\n"));
        } else {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\r', "\\r");
            out.push_str(&format!("{k}=\"{escaped}\"\n"));
        }
    }
    out
}

/// A usage error (exit 2) with a hint.
fn usage(message: String, hint: &str) -> Failure {
    Failure::Input(Sources::new(), Diagnostic::new(message).hint(hint).into())
}

/// Says which variables the exported stack reads.
fn variables_to_set(variables: &[Variable], out: &Output) {
    if variables.is_empty() {
        return;
    }
    out.status("set these variables where the stack is deployed (hsm writes no value):");
    for v in variables {
        let what = match &v.source {
            Source::User { expression, .. } => format!("yours, written `{expression}` in your files"),
            Source::Generated { service, name } => format!("the {name} hsm generates for `{service}`: choose one"),
        };
        let what = match v.name.strip_suffix("_URLENCODED") {
            Some(base) if v.url_encoded => format!("the value of {base}, percent-encoded for a URL"),
            _ => what,
        };
        out.status(&format!("  {}  ({what})", v.name));
    }
}

/// The file in an export's folder that lists, a relative path a line, the files
/// the export wrote: the next export replaces and removes only those.
const MANIFEST: &str = ".hsm-export";

/// Writes every file, replacing only what an earlier export wrote (the files its
/// manifest lists, or a `main` file that says hsm wrote it); files the earlier
/// export wrote that this one does not are removed. Nothing is written when a
/// file is in the way.
fn write_all(
    main: &Path,
    dir: &Path,
    files: &BTreeMap<PathBuf, String>,
    scripts: &[PathBuf],
    out: &Output,
) -> Result<(), Failure> {
    let earlier: Vec<PathBuf> = std::fs::read_to_string(dir.join(MANIFEST))
        .map(|m| m.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| dir.join(l)).collect())
        .unwrap_or_default();
    for path in files.keys() {
        let Ok(meta) = std::fs::symlink_metadata(path) else { continue };
        let ours = earlier.contains(path)
            || (path == main
                && std::fs::read_to_string(path).is_ok_and(|t| t.lines().take(2).any(|l| l.contains(GENERATED))));
        if meta.is_dir() || meta.file_type().is_symlink() || !ours {
            return Err(usage(
                format!("{} exists and was not written by `hsm export`", path.display()),
                "choose another output with `-o`, or move it away",
            ));
        }
    }
    let job = |e: std::io::Error, p: &Path| Failure::Job(format!("can't write {}: {e}", p.display()));
    for (path, text) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| job(e, parent))?;
        }
        std::fs::write(path, text).map_err(|e| job(e, path))?;
        #[cfg(unix)]
        if scripts.contains(path) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| job(e, path))?;
        }
    }
    for stale in earlier.iter().filter(|p| !files.contains_key(*p)) {
        out.verbose(&format!("removed {}, which the project no longer exports", stale.display()));
        let _ = std::fs::remove_file(stale);
    }
    let mut manifest = format!("# {GENERATED}`: the files it wrote here, which the next export replaces.\n");
    for path in files.keys() {
        if let Ok(rel) = path.strip_prefix(dir) {
            manifest.push_str(&format!("{}\n", rel.display()));
        }
    }
    let path = dir.join(MANIFEST);
    std::fs::write(&path, manifest).map_err(|e| job(e, &path))
}

/// Writes a file only its owner can read, replacing only a values file hsm wrote
/// (never a symbolic link, nor a file of the user's such as `.env`).
fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let ours = meta.is_file() && std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(VALUES_HEADER));
        if !ours {
            return Err(usage(
                format!("{} exists and is not a values file `hsm export` wrote", path.display()),
                "name a new file; it will hold secrets, readable by you only",
            ));
        }
    }
    let job = |e: std::io::Error| Failure::Job(format!("can't write {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(job)?;
        }
    }
    let mut f = options.open(path).map_err(job)?;
    f.write_all(text.as_bytes()).map_err(job)
}

/// The first words of a values file.
const VALUES_HEADER: &str = "# The values of `hsm export";

/// Resolves generated secrets as `hsm sync` derives them for the project (so the
/// values file matches the local stack), and host ports as the container's own.
struct ExportRefs<'a> {
    key: &'a hsm_key::UserKey,
    planned: &'a Planned,
    service: &'a str,
}

impl ResolveRefs for ExportRefs<'_> {
    fn generated(&self, name: &str) -> Result<Sensitive, String> {
        let project = &self.planned.resolution.project;
        Ok(self.key.generated(&project.dir, &project.name, self.service, name))
    }
    fn host_port(&self, _container: &str, port: u16) -> Result<u16, String> {
        Ok(port)
    }
}

/// The values of the export's variables, as a dotenv file.
fn values_file(planned: &Planned, variables: &[Variable], out: &Output) -> Result<String, Failure> {
    let key = engine::key(out)?;
    let secrets = &planned.resolution.secrets;
    let mut vars = Vec::new();
    for v in variables {
        let value = match &v.source {
            Source::User { id, .. } => secrets.get(*id).map(|s| s.expose().to_string()).unwrap_or_default(),
            Source::Generated { service, name } => {
                ExportRefs { key: &key, planned, service }.generated(name).map_err(Failure::Job)?.into_exposed()
            }
        };
        let value = if v.url_encoded { Encoding::Url.apply(&value) } else { value };
        vars.push((v.name.clone(), value));
    }
    let mut text =
        format!("{VALUES_HEADER} compose` for project `{}`. Secret: keep it private.\n", planned.plan.project);
    text.push_str(&crate::commands::env::dotenv(&vars, true).map_err(Failure::Job)?);
    Ok(text)
}

/// The Secrets with their values, as manifests.
fn secret_manifests(
    planned: &Planned,
    secrets: &[hsm_export::SecretSpec],
    options: &KubeOptions,
    out: &Output,
) -> Result<String, Failure> {
    let key = engine::key(out)?;
    let mut text = format!(
        "{VALUES_HEADER} kubernetes` (the Secrets) for project `{}`. Secret: keep it private.\n",
        planned.plan.project
    );
    for secret in secrets {
        let mut data = serde_json::Map::new();
        for (k, value, service) in &secret.entries {
            let refs = ExportRefs { key: &key, planned, service };
            let v = Text::expose(value, &planned.resolution.secrets, &refs).map_err(Failure::Job)?;
            data.insert(k.clone(), serde_json::Value::String(v.into_exposed()));
        }
        let mut metadata =
            serde_json::json!({ "name": secret.name, "labels": { "app.kubernetes.io/managed-by": "hsm" } });
        if let Some(ns) = &options.namespace {
            metadata["namespace"] = serde_json::json!(ns);
        }
        let object = serde_json::json!({ "apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "stringData": data });
        text.push_str("---\n");
        text.push_str(&serde_json::to_string_pretty(&object).map_err(|e| Failure::Job(e.to_string()))?);
        text.push('\n');
    }
    Ok(text)
}
