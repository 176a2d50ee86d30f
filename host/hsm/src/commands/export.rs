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
    let dir = file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
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
    out.status(&format!("run it: docker compose -f {} up -d", file.display()));
    Ok(())
}

fn kubernetes(global: &GlobalArgs, args: &ExportKubernetesArgs, out: &Output) -> Result<(), Failure> {
    if let Some(ns) = &args.namespace
        && (hsm_export::dns(ns) != *ns || ns.len() > 63)
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

/// Writes every file, replacing only files an earlier export wrote: `main` (the
/// Compose file, `kustomization.yaml`) must be absent or hsm's. Files an earlier
/// export wrote in `dir` that this one does not are removed.
fn write_all(
    main: &Path,
    dir: &Path,
    files: &BTreeMap<PathBuf, String>,
    scripts: &[PathBuf],
    out: &Output,
) -> Result<(), Failure> {
    for path in files
        .keys()
        .filter(|p| p.as_path() == main || p.extension().is_some_and(|e| e == "yaml" || e == "env" || e == "sh"))
    {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.lines().take(2).any(|l| l.contains(GENERATED))
        {
            return Err(usage(
                format!("{} exists and was not written by `hsm export`", path.display()),
                "choose another output with `-o`, or move the file away",
            ));
        }
    }
    let earlier = generated_files(dir);
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
    for stale in earlier.into_iter().filter(|p| !files.contains_key(p)) {
        out.verbose(&format!("removed {}, which the project no longer exports", stale.display()));
        let _ = std::fs::remove_file(&stale);
    }
    Ok(())
}

/// The files an earlier export wrote in `dir`: those that say so, and what it
/// wrote under `files/`.
fn generated_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() && (d != dir || ["env", "files"].iter().any(|n| path.ends_with(n))) {
                todo.push(path);
            } else if kind.is_file() {
                let ours = path.strip_prefix(dir).is_ok_and(|r| r.starts_with("files"))
                    || std::fs::read_to_string(&path).is_ok_and(|t| t.lines().take(2).any(|l| l.contains(GENERATED)));
                if ours {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Writes a file only its owner can read, replacing what was there.
fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
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

/// Resolves generated secrets as `hsm sync` derives them for the project (so the
/// values file matches the local stack), and host ports as the container's own.
struct ExportRefs<'a> {
    key: &'a hsm_exec::keys::UserKey,
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
    let mut text = format!(
        "# The values of the variables of `hsm export compose` for project `{}`. Secret: keep it private.\n",
        planned.plan.project
    );
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
        "# The Secrets of `hsm export kubernetes` for project `{}`, with their values. Secret: keep it private.\n",
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
