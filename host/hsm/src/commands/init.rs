//! `hsm init`: writes a first `hsm.yaml` for a folder, so that a project starts
//! from a file `hsm validate` accepts: the project named after the folder, and the
//! Python projects found below it as editable packages. It never overwrites one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hsm_config::{PROJECT_FILE, PackageName, ProjectName};
use hsm_model::{Diagnostic, Sources};

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;

/// Where editors that use yaml-language-server find the schema of `hsm.yaml`
/// (`schema/hsm.schema.json` of the repository).
const SCHEMA_URL: &str = "https://raw.githubusercontent.com/hsm-dev/hsm/main/schema/hsm.schema.json";

/// How many folders below the project folder Python projects are looked for.
const MAX_DEPTH: usize = 4;

/// Folders that hold environments, dependencies or build output, never a project
/// of the user's (hidden folders, `.venv` among them, are skipped too).
const SKIPPED: [&str; 4] = ["venv", "node_modules", "target", "__pycache__"];

/// A Python project found below the project folder.
struct Found {
    /// Its package name in `hsm.yaml`.
    name: String,
    /// Its folder as `hsm.yaml` writes it: `.` or `./a/b`.
    path: String,
    /// The earlier project with the same name, when there is one: this one is
    /// written commented out, since `hsm.yaml` can list a name once.
    same_name_as: Option<String>,
}

/// Runs `hsm init`.
pub(crate) fn run(global: &GlobalArgs, out: &Output) -> Result<(), Failure> {
    let dir = &global.project_dir;
    if !dir.is_dir() {
        return Err(input_error(
            format!("`{}` is not a folder", dir.display()),
            "create it first, or name an existing folder with `-C`",
        ));
    }
    let file = dir.join(PROJECT_FILE);
    let already = || {
        input_error(
            format!("`{}` already exists", file.display()),
            "hsm init never overwrites it: edit it (`hsm validate` checks it), or remove it and run `hsm init` again",
        )
    };
    if file.symlink_metadata().is_ok() {
        return Err(already());
    }
    let folder = folder_name(dir);
    let project = project_name(&folder);
    let found = name_projects(dir, &folder, find_projects(dir));
    let text = render(&project, &found);

    let written = std::fs::OpenOptions::new().write(true).create_new(true).open(&file);
    let mut handle = match written {
        Ok(handle) => handle,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(already()),
        Err(e) => return Err(Failure::Job(format!("cannot write `{}`: {e}", file.display()))),
    };
    handle.write_all(text.as_bytes()).map_err(|e| Failure::Job(format!("cannot write `{}`: {e}", file.display())))?;
    report(out, &file, dir, (&folder, &project), &found);
    Ok(())
}

fn input_error(message: String, hint: &str) -> Failure {
    Failure::Input(Sources::new(), Diagnostic::new(message).hint(hint).into())
}

/// The name of the folder itself (`.` is the current folder's name).
fn folder_name(dir: &Path) -> String {
    let absolute = dir.canonicalize().or_else(|_| std::path::absolute(dir)).unwrap_or_else(|_| dir.to_path_buf());
    absolute.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `folder` made a valid project name: lowercase, with `-` for what the rule does
/// not allow, trimmed to 63 characters; `project` when nothing is left.
fn project_name(folder: &str) -> String {
    let mut name = String::new();
    for c in folder.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) && !(c == '_' && name.is_empty()) {
            name.push(c);
        }
    }
    name.truncate(63);
    let name = name.trim_end_matches(['-', '_']);
    if name.parse::<ProjectName>().is_ok() { name.to_string() } else { "project".to_string() }
}

/// `folder` made a valid package name: `-` for what the rule does not allow, and
/// starting and ending with a letter or digit; `None` when nothing is left.
fn package_name(folder: &str) -> Option<String> {
    let name: String =
        folder.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '-' }).collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut collapsed = String::with_capacity(name.len());
    for c in name.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    collapsed.parse::<PackageName>().is_ok().then_some(collapsed)
}

/// The folders (as their components below `root`) that hold a `pyproject.toml`,
/// in name order, not looking inside a project (its folders are part of it).
fn find_projects(root: &Path) -> Vec<Vec<String>> {
    fn walk(root: &Path, rel: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
        let dir: PathBuf = rel.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        if dir.join("pyproject.toml").is_file() {
            found.push(rel.clone());
            return;
        }
        if rel.len() == MAX_DEPTH {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        // Symbolic links are not followed (`file_type` does not): no loops.
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && !SKIPPED.contains(&n.as_str()))
            .collect();
        names.sort();
        for name in names {
            rel.push(name);
            walk(root, rel, found);
            rel.pop();
        }
    }
    let mut found = Vec::new();
    walk(root, &mut Vec::new(), &mut found);
    found
}

/// Names each project: the distribution name its files declare, else its folder's
/// name. A name met before (compared as Python compares them) is marked.
fn name_projects(root: &Path, root_folder: &str, projects: Vec<Vec<String>>) -> Vec<Found> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut found = Vec::new();
    for rel in projects {
        let dir = rel.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let folder = rel.last().map_or(root_folder, String::as_str);
        let name = hsm_exec::uv::distribution_name(&dir)
            .filter(|n| n.parse::<PackageName>().is_ok())
            .or_else(|| package_name(folder))
            .unwrap_or_else(|| "package".to_string());
        let path = if rel.is_empty() { ".".to_string() } else { format!("./{}", rel.join("/")) };
        let key = name.to_ascii_lowercase().replace(['_', '.'], "-");
        let same_name_as = seen.get(&key).cloned();
        seen.entry(key).or_insert_with(|| path.clone());
        found.push(Found { name, path, same_name_as });
    }
    found
}

/// The text of `hsm.yaml`.
fn render(project: &str, found: &[Found]) -> String {
    let mut text = format!(
        "# yaml-language-server: $schema={SCHEMA_URL}\nversion: 1\nproject: {}\nregistries: [bundled]\n",
        scalar(project)
    );
    if found.is_empty() {
        text.push_str(
            "# No Python project (a folder with `pyproject.toml`) was found here. Replace `[]`\n\
             # with the packages the project needs, then run `hsm sync`; for instance\n\
             # packages:\n\
             #   - { name: core, editable: ./core }   # a local Python project, installed editable\n\
             #   - auth-service                       # a package the bundled registry defines\n\
             packages: []\n",
        );
        return text;
    }
    text.push_str("packages:\n");
    for f in found {
        let entry = format!("{{ name: {}, editable: {} }}", scalar(&f.name), scalar(&f.path));
        match &f.same_name_as {
            None => {
                let _ = writeln!(text, "  - {entry}");
            }
            Some(first) => {
                let _ = writeln!(text, "  # - {entry}   # the same name as {first}: rename one to list both");
            }
        }
    }
    text
}

/// `s` as a YAML scalar in a flow mapping: plain when it can only read as that
/// string, else double-quoted (with every character YAML can't hold raw, such as
/// a C1 control in a folder's name, escaped).
fn scalar(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "null");
    if plain { s.to_string() } else { hsm_config::yaml_out::quote(s) }
}

/// Says what was written, and what to run next.
fn report(out: &Output, file: &Path, dir: &Path, (folder, project): (&str, &str), found: &[Found]) {
    let listed: Vec<&Found> = found.iter().filter(|f| f.same_name_as.is_none()).collect();
    let from = if folder == project { String::new() } else { format!(" (from the folder name `{folder}`)") };
    let what = match listed.len() {
        0 => "no package yet".to_string(),
        1 => "1 editable package".to_string(),
        n => format!("{n} editable packages"),
    };
    out.status(&format!("wrote `{}`: project `{project}`{from}, {what}", file.display()));
    let width = listed.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &listed {
        out.status(&format!("  {:<width$}  {}", f.name, f.path));
    }
    for f in found.iter().filter(|f| f.same_name_as.is_some()) {
        out.warning(&format!(
            "`{}` is named `{}` like {}: left commented out in {PROJECT_FILE}",
            f.path,
            f.name,
            f.same_name_as.as_deref().unwrap_or_default()
        ));
    }
    let hsm = if dir == Path::new(".") { "hsm".to_string() } else { format!("hsm -C {}", shell_word(dir)) };
    if listed.is_empty() {
        out.status(&format!("next: add the packages the project needs to {PROJECT_FILE}, then run `{hsm} sync`"));
    } else {
        out.status(&format!("next: run `{hsm} sync` to install them (`{hsm} plan` shows what it would do)"));
    }
}

/// `path` as one word for a POSIX shell.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+' | ':')) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_become_valid_project_names() {
        for (folder, name) in [
            ("My App!", "my-app"),
            ("rag-app", "rag-app"),
            ("__init_me__", "init_me"),
            ("--x--", "x"),
            ("0day", "0day"),
            ("été", "t"),
            ("", "project"),
            ("!!!", "project"),
        ] {
            assert_eq!(project_name(folder), name, "{folder}");
        }
        assert_eq!(project_name(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn folder_names_become_valid_package_names() {
        assert_eq!(package_name("My Lib (old)").as_deref(), Some("My-Lib-old"));
        assert_eq!(package_name("zope.interface").as_deref(), Some("zope.interface"));
        assert_eq!(package_name("__x__").as_deref(), Some("x"));
        assert_eq!(package_name("!!"), None);
    }

    #[test]
    fn scalars_that_would_read_as_something_else_are_quoted() {
        assert_eq!(scalar("api"), "api");
        assert_eq!(scalar("./libs/core"), "./libs/core");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("True"), "\"True\"");
        assert_eq!(scalar("./My App, v2"), "\"./My App, v2\"");
        assert_eq!(scalar("./a\u{85}b\"c\\"), "\"./a\\u0085b\\\"c\\\\\"");
    }
}
