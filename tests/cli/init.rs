//! `hsm init`, run through the real binary in temporary folders: what it writes,
//! that `hsm validate` accepts it, and that it never overwrites a project file.

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;

/// Creates `files` (with their folders) below `dir`.
fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Runs `hsm -C dir ARGS` with an empty environment but for hsm's own folders.
fn hsm_in(dir: &Path, args: &[&str]) -> support::Run {
    let state = tempfile::tempdir().unwrap();
    let data = state.path().join("data").display().to_string();
    let cache = state.path().join("cache").display().to_string();
    let d = dir.display().to_string();
    let mut all = vec!["-C", d.as_str()];
    all.extend_from_slice(args);
    support::hsm(&all, &[("HSM_DATA_DIR", &data), ("HSM_CACHE_DIR", &cache)])
}

const SCHEMA_LINE: &str =
    "# yaml-language-server: $schema=https://raw.githubusercontent.com/hsm-dev/hsm/main/schema/hsm.schema.json\n";

#[test]
fn init_lists_the_python_projects_below_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    write(
        &dir,
        &[
            ("services/api/pyproject.toml", "[project]\nname = \"Shop_API\"\nversion = \"1.0\"\n"),
            ("services/api/plugins/extra/pyproject.toml", "[project]\nname = \"inside-api\"\n"),
            ("worker/pyproject.toml", "[build-system]\nrequires = [\"hatchling\"]\n"),
            (".hidden/tool/pyproject.toml", "[project]\nname = \"hidden\"\n"),
            (".venv/lib/site/pyproject.toml", "[project]\nname = \"in-venv\"\n"),
            ("node_modules/x/pyproject.toml", "[project]\nname = \"in-node-modules\"\n"),
            ("a/b/c/d/e/pyproject.toml", "[project]\nname = \"too-deep\"\n"),
            ("README.md", "# shop\n"),
        ],
    );
    let init = hsm_in(&dir, &["init"]);
    assert_eq!((init.code, init.stdout.as_str()), (0, ""), "{}", init.stderr);
    let written = std::fs::read_to_string(dir.join("hsm.yaml")).unwrap();
    let expected = format!(
        "{SCHEMA_LINE}version: 1
project: shop
registries: [bundled]
packages:
  - {{ name: shop-api, editable: ./services/api }}
  - {{ name: worker, editable: ./worker }}
"
    );
    assert_eq!(written, expected);
    let d = dir.display();
    assert_eq!(
        init.stderr,
        format!(
            "wrote `{d}/hsm.yaml`: project `shop`, 2 editable packages
  shop-api  ./services/api
  worker    ./worker
next: run `hsm -C {d} sync` to install them (`hsm -C {d} plan` shows what it would do)
"
        )
    );

    let validate = hsm_in(&dir, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert_eq!(validate.stderr, "`shop` is valid: 2 packages, 0 services\n");
}

#[test]
fn init_never_overwrites_a_project_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = "version: 1\nproject: mine\npackages: []\n";
    write(tmp.path(), &[("hsm.yaml", mine), ("lib/pyproject.toml", "[project]\nname = \"lib\"\n")]);
    let init = hsm_in(tmp.path(), &["init"]);
    assert_eq!((init.code, init.stdout.as_str()), (2, ""));
    assert!(init.stderr.starts_with("error: `"), "{}", init.stderr);
    assert!(init.stderr.contains("hsm.yaml` already exists"), "{}", init.stderr);
    assert!(init.stderr.contains("hint: hsm init never overwrites it"), "{}", init.stderr);
    assert_eq!(std::fs::read_to_string(tmp.path().join("hsm.yaml")).unwrap(), mine);
}

#[test]
fn init_needs_an_existing_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let init = hsm_in(&tmp.path().join("nowhere"), &["init"]);
    assert_eq!(init.code, 2);
    assert!(init.stderr.contains("is not a folder"), "{}", init.stderr);
}

#[test]
fn a_folder_name_that_is_no_project_name_is_made_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("My App!");
    std::fs::create_dir(&dir).unwrap();
    let init = hsm_in(&dir, &["init"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(
        init.stderr.contains("project `my-app` (from the folder name `My App!`), no package yet"),
        "{}",
        init.stderr
    );
    let written = std::fs::read_to_string(dir.join("hsm.yaml")).unwrap();
    assert!(written.starts_with(&format!("{SCHEMA_LINE}version: 1\nproject: my-app\nregistries: [bundled]\n")));
    // No Python project: an empty list, and a comment saying how to fill it.
    assert!(written.ends_with("\npackages: []\n"), "{written}");
    assert!(written.contains("#   - { name: core, editable: ./core }"), "{written}");

    let validate = hsm_in(&dir, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert_eq!(validate.stderr, "`my-app` is valid: 0 packages, 0 services\n");
}

#[test]
fn the_folder_itself_can_be_the_python_project_and_names_are_listed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tool");
    write(
        &dir,
        &[("pyproject.toml", "[project]\nname = \"tool\"\n"), ("sub/pyproject.toml", "[project]\nname = \"x\"\n")],
    );
    assert_eq!(hsm_in(&dir, &["init"]).code, 0);
    let written = std::fs::read_to_string(dir.join("hsm.yaml")).unwrap();
    assert!(written.ends_with("packages:\n  - { name: tool, editable: . }\n"), "{written}");

    // Two projects with one name: the second is left commented out.
    let dir = tmp.path().join("twins");
    write(
        &dir,
        &[
            ("a/pyproject.toml", "[project]\nname = \"same\"\n"),
            ("b/pyproject.toml", "[project]\nname = \"Same\"\n"),
            ("c d/pyproject.toml", "[project]\nname = \"123\"\n"),
        ],
    );
    let init = hsm_in(&dir, &["init"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(init.stderr.contains("warning: `./b` is named `same` like ./a"), "{}", init.stderr);
    let written = std::fs::read_to_string(dir.join("hsm.yaml")).unwrap();
    assert!(
        written.ends_with(
            "packages:
  - { name: same, editable: ./a }
  # - { name: same, editable: ./b }   # the same name as ./a: rename one to list both
  - { name: \"123\", editable: \"./c d\" }
"
        ),
        "{written}"
    );
    let validate = hsm_in(&dir, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
}

/// A folder whose name holds a character YAML can't hold raw (a C1 control): the
/// path is written escaped, and the file reads back.
#[test]
fn a_folder_name_yaml_cant_hold_raw_is_written_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("odd");
    write(&dir, &[("a\u{81}b/pyproject.toml", "[project]\nname = \"ab\"\n")]);
    let init = hsm_in(&dir, &["init"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    let written = std::fs::read_to_string(dir.join("hsm.yaml")).unwrap();
    assert!(written.contains("  - { name: ab, editable: \"./a\\u0081b\" }\n"), "{written}");
    let validate = hsm_in(&dir, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
}
