//! The committed JSON Schemas in `schema/` must match what `hsm schema` prints, so
//! editors that use them agree with hsm. To refresh them after changing the file
//! formats: `HSM_UPDATE_SCHEMAS=1 cargo nextest run -p hsm --test schema`.

#[path = "../support/mod.rs"]
mod support;

fn check(format: &str, file: &str) {
    let run = support::hsm(&["schema", format], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let path = support::repo_root().join("schema").join(file);
    if std::env::var_os("HSM_UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &run.stdout).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == run.stdout,
        "schema/{file} is out of date with `hsm schema {format}`; refresh it with\n  HSM_UPDATE_SCHEMAS=1 cargo nextest run -p hsm --test schema"
    );
}

#[test]
fn project_schema_is_up_to_date() {
    check("project", "hsm.schema.json");
}

#[test]
fn registry_schema_is_up_to_date() {
    check("registry", "registry.schema.json");
}

#[test]
fn default_format_is_the_project_file() {
    assert_eq!(support::hsm(&["schema"], &[]).stdout, support::hsm(&["schema", "project"], &[]).stdout);
}
