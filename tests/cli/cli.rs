//! The command line's contract: exit codes, streams, colours, verbosity, and how
//! `.env` and the environment feed interpolation, run through the real binary.

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> support::Run {
    let d = dir.display().to_string();
    let mut all = vec!["-C", d.as_str()];
    all.extend_from_slice(args);
    support::hsm(&all, env)
}

const SECRET_PROJECT: &str = "version: 1
project: app
registries: [./reg.yaml]
packages: [p]
";

const SECRET_REGISTRY: &str = "packages:
  p:
    pypi: p
    implies:
      - service: db
        params: { image: \"x/chunker:1\", env: { PASSWORD: \"${DB_PASSWORD}\", URL: \"postgres://u:${DB_PASSWORD}@h/${DB_NAME:-main}\" } }
services:
  db: { kind: chunker, profile: local }
profiles:
  local: { mode: managed }
";

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let bad = support::hsm(&["frobnicate"], &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("unrecognized subcommand"), "{}", bad.stderr);
    assert_eq!(bad.stdout, "");
    let help = support::hsm(&["--help"], &[]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Print the resolved project"), "{}", help.stdout);
    let version = support::hsm(&["--version"], &[]);
    assert_eq!((version.code, version.stdout.starts_with("hsm ")), (0, true));
    // Nothing else speaks first.
    assert_eq!(version.stderr, "");
}

#[test]
fn a_folder_without_hsm_yaml_is_bad_input() {
    let dir = project(&[]);
    let run = run_in(dir.path(), &["validate"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("error: no `hsm.yaml` in"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: run hsm in a project folder"), "{}", run.stderr);
}

#[test]
fn validate_reports_on_stderr_and_quiet_silences_it() {
    let dir = project(&[("hsm.yaml", "version: 1\nproject: app\npackages: [auth-service]\n")]);
    let run = run_in(dir.path(), &["validate"], &[]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(run.stderr, "`app` is valid: 1 package, 1 service\n");
    let quiet = run_in(dir.path(), &["-q", "validate"], &[]);
    assert_eq!((quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()), (0, "", ""));
}

#[test]
fn verbose_lists_the_files_read() {
    let dir = project(&[("hsm.yaml", SECRET_PROJECT), ("reg.yaml", SECRET_REGISTRY), (".env", "DB_PASSWORD=x\n")]);
    let run = run_in(dir.path(), &["-v", "validate"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Only the plugins of the kinds the project uses are loaded: the chunker kind
    // of `db`, and the Python packages' one.
    let plugins =
        "plugin chunker@0.1.0 (bundled) serves chunker\nplugin uv-package@0.1.0 (bundled) serves uv-package\n";
    assert_eq!(
        run.stderr,
        format!(
            "read hsm.yaml\nread .env\nread reg.yaml\n{plugins}plugins planned 2 service(s)\n`app` is valid: 1 package, 1 service\n"
        )
    );
}

#[test]
fn colours_follow_the_flag_and_no_color() {
    let dir = project(&[("hsm.yaml", "version: 2\nproject: app\n")]);
    let always = run_in(dir.path(), &["--color", "always", "validate"], &[]);
    assert!(always.stderr.contains("\x1b[1;31merror"), "{:?}", always.stderr);
    let never = run_in(dir.path(), &["--color", "never", "validate"], &[]);
    assert!(!never.stderr.contains('\x1b'));
    // Not a terminal: `auto` means no colour, and NO_COLOR changes nothing.
    let auto = run_in(dir.path(), &["validate"], &[("NO_COLOR", "1")]);
    assert!(!auto.stderr.contains('\x1b'));
    assert_eq!(auto.code, 2);
}

#[test]
fn dotenv_is_read_and_the_environment_wins() {
    let dir = project(&[
        ("hsm.yaml", SECRET_PROJECT),
        ("reg.yaml", SECRET_REGISTRY),
        (".env", "# local values\nDB_PASSWORD=from-dotenv-file\nexport DB_NAME=\"from dotenv\"\n"),
    ]);
    let run = run_in(dir.path(), &["plan", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("from-dotenv-file"), "a secret leaked: {}", run.stdout);
    assert!(!run.stdout.contains("from dotenv"), "a secret leaked: {}", run.stdout);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let env = &plan["services"][0]["contributions"][0]["params"]["env"];
    assert_eq!(env["PASSWORD"], "${DB_PASSWORD}");
    assert_eq!(env["URL"], "postgres://u:${DB_PASSWORD}@h/${DB_NAME:-main}");
    // The plugin places the secret in the container's environment, still as a reference.
    let container = &plan["services"][0]["actions"][0];
    assert_eq!(container["env"][0], serde_json::json!(["PASSWORD", "${DB_PASSWORD}"]));
    // With the variable in the environment and no `.env`, it resolves as well.
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let run = run_in(dir.path(), &["plan", "--json"], &[("DB_PASSWORD", "from-env")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("from-env"));
}

#[test]
fn a_missing_variable_is_named_with_its_location() {
    let dir = project(&[("hsm.yaml", SECRET_PROJECT), ("reg.yaml", SECRET_REGISTRY)]);
    let run = run_in(dir.path(), &["--color", "never", "plan"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("error: variable `DB_PASSWORD` is not set\n --> reg.yaml:6:59"), "{}", run.stderr);
    // Both references are reported, and `${DB_NAME:-main}` needs nothing.
    assert!(run.stderr.contains("reg.yaml:6:95"), "{}", run.stderr);
    assert!(!run.stderr.contains("DB_NAME`"), "{}", run.stderr);
    assert!(run.stderr.contains("error: 2 problems found; nothing was run"), "{}", run.stderr);
}

#[test]
fn plan_text_goes_to_stdout() {
    let dir = project(&[("hsm.yaml", "version: 1\nproject: app\npackages: [auth-service]\n")]);
    let run = run_in(dir.path(), &["--color", "never", "plan"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert!(run.stdout.starts_with("project app (hsm.yaml)\n"), "{}", run.stdout);
    assert!(run.stdout.contains("  postgres kind postgres\n"), "{}", run.stdout);
}

/// Every run reads the files as they are: the same files give the same plan, a
/// change shows in the next plan, and a problem is reported on every run.
/// `--no-cache` writes nothing.
#[test]
fn every_run_plans_from_the_files_as_they_are() {
    let dir = project(&[
        ("hsm.yaml", &SECRET_PROJECT.replace("./reg.yaml", "./reg")),
        ("reg/a.yaml", SECRET_REGISTRY),
        (".env", "DB_PASSWORD=x\n"),
    ]);
    let (cache, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cache_dir, data_dir) = (cache.path().display().to_string(), data.path().display().to_string());
    let env = [("HSM_CACHE_DIR", cache_dir.as_str()), ("HSM_DATA_DIR", data_dir.as_str())];
    let plan = || {
        let run = run_in(dir.path(), &["-v", "plan", "--json"], &env);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run
    };
    let fresh = run_in(dir.path(), &["plan", "--json", "--no-cache"], &env);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none(), "--no-cache wrote the cache");
    assert!(std::fs::read_dir(data.path()).unwrap().next().is_none(), "--no-cache made a user key");
    for _ in 0..2 {
        let again = plan();
        assert_eq!(again.stdout, fresh.stdout);
        assert!(again.stderr.contains("read hsm.yaml\nread .env\nread reg/a.yaml\n"), "{}", again.stderr);
    }

    // A registry file appears in the registry folder: it is read.
    std::fs::write(dir.path().join("reg/b.yaml"), "packages:\n  q: { pypi: q }\n").unwrap();
    assert!(plan().stderr.contains("read reg/b.yaml"));
    // A registry file changes: the plan shows the change.
    std::fs::write(dir.path().join("reg/a.yaml"), SECRET_REGISTRY.replace("x/chunker:1", "x/chunker:2")).unwrap();
    let changed = plan();
    assert!(changed.stdout.contains("x/chunker:2") && !changed.stdout.contains("x/chunker:1"));

    // A file with a problem is reported on every run.
    std::fs::write(dir.path().join("reg/a.yaml"), SECRET_REGISTRY.replace("pypi: p", "pypi: p\n    pipy: q")).unwrap();
    for _ in 0..2 {
        let run = run_in(dir.path(), &["--color", "never", "validate"], &env);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("error: unknown field `pipy`"), "{}", run.stderr);
    }
}

#[test]
fn params_follow_yaml_1_2_so_yes_and_no_stay_strings() {
    let registry = "packages:\n  p:\n    implies:\n      - service: db\n        params: { image: x/chunker:1, health_path: ~, env: { country: NO, debug: on, tls: true, port: 0x1F, ratio: 0.5 } }\nservices:\n  db: { kind: chunker, profile: local }\nprofiles:\n  local: { mode: managed }\n";
    let dir = project(&[
        ("hsm.yaml", "version: 1\nproject: app\nregistries: [./reg.yaml]\npackages: [p]\n"),
        ("reg.yaml", registry),
    ]);
    let run = run_in(dir.path(), &["plan", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        plan["services"][0]["contributions"][0]["params"],
        serde_json::json!({ "image": "x/chunker:1", "health_path": null, "env": { "country": "NO", "debug": "on", "tls": true, "port": 31, "ratio": 0.5 } })
    );
}

/// A project renames the variables a registry package gets by adding to the
/// package's implication in hsm.yaml; the plugin applies `env_names`.
#[test]
fn a_project_renames_a_packages_variables() {
    let yaml = "version: 1\nproject: app\npackages:\n  - name: auth-service\n    implies:\n      - service: postgres\n        params: { env_names: { DATABASE_URL: AUTH_DB_URL, DB_PASSWORD: null } }\n";
    let dir = project(&[("hsm.yaml", yaml)]);
    let run = run_in(dir.path(), &["plan", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let vars = &plan["services"][0]["env"][0]["vars"];
    assert_eq!(plan["services"][0]["env"][0]["consumer"]["name"], "auth-service");
    assert!(vars.get("AUTH_DB_URL").is_some(), "{vars}");
    assert!(vars.get("DATABASE_URL").is_none(), "{vars}");
    assert!(vars.get("DB_PASSWORD").is_none(), "{vars}");
    assert_eq!(vars["DB_NAME"], "auth", "the registry's params still apply");
}

/// Two services that give one package the same variable would have one silently
/// replace the other: an error, with the rename that fixes it.
#[test]
fn two_services_giving_a_package_one_variable_is_an_error() {
    let registry = "packages:\n  app:\n    implies:\n      - service: db\n        params: { db_name: app }\n      - service: replica\n        params: { db_name: app }\nservices:\n  db: { kind: postgres, profile: local, params: { version: \"16\" } }\n  replica: { kind: postgres, profile: local, params: { version: \"16\" } }\nprofiles:\n  local: { mode: managed }\n";
    let dir = project(&[
        ("hsm.yaml", "version: 1\nproject: app\nregistries: [./reg.yaml]\npackages: [app]\n"),
        ("reg.yaml", registry),
    ]);
    let run = run_in(dir.path(), &["--color", "never", "validate"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("error: services `db` and `replica` both give package `app` `DB_HOST`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "hint: rename one with `env_names: { DB_HOST: NEW_NAME }` in the params `app` gives service `replica`"
        ),
        "{}",
        run.stderr
    );
}

/// A `.env` a Compose user already has, as a Windows editor saves it: a
/// byte-order mark, CRLF line ends, keys `${…}` can't name, Compose's escapes, a
/// JSON-shaped default and a `$` that starts nothing.
#[test]
fn a_compose_env_file_is_read_as_compose_reads_it() {
    let registry = "packages:
  p:
    implies: [{ service: db }]
services:
  db: { kind: postgres, profile: corp }
profiles:
  corp:
    mode: external
    services:
      db: { host: \"${DB_HOST}\", user: \"${DB_USER}\", password: \"${DB_PASSWORD}\", sslmode: \"${MODE:-{\\\"a\\\":1}}\" }
";
    let env = "\u{feff}# saved on Windows\r\nDB_HOST=db.example\r\n456 = ABC\r\na[1]=c\r\na.b=c\r\nclé=v\r\nDB_USER=\"app\\0101\"\r\nDB_PASSWORD=\"costs 5$ a \\\"month\\\"\"\r\n";
    let dir = project(&[
        ("hsm.yaml", "version: 1\nproject: app\nregistries: [./reg.yaml]\npackages: [p]\n"),
        ("reg.yaml", registry),
        (".env", env),
    ]);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let run = run_in(dir.path(), &["env", "p", "--reveal", "--format", "json"], &[("HSM_DATA_DIR", &data_dir)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let vars: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(vars["DB_HOST"], "db.example");
    assert_eq!(vars["DB_USER"], "appA", "octal \\0101 is `A`");
    assert_eq!(vars["DB_PASSWORD"], "costs 5$ a \"month\"");
    assert_eq!(
        vars["DATABASE_URL"],
        "postgresql://appA:costs%205%24%20a%20%22month%22@db.example:5432/postgres?sslmode=%7B%22a%22%3A1%7D"
    );

    // A key `${…}` can't name is an error only where a reference uses it.
    let dir = project(&[
        ("hsm.yaml", "version: 1\nproject: app\nregistries: [./reg.yaml]\npackages: [p]\n"),
        ("reg.yaml", &registry.replace("${DB_HOST}", "${a.b}")),
        (".env", env),
    ]);
    let run = run_in(dir.path(), &["validate"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("error: `a.b` can't be referenced"), "{}", run.stderr);
    assert!(run.stderr.contains("--> reg.yaml:10:20"), "{}", run.stderr);
}

/// `hsm run PKG` and `hsm env PKG` plan only the services the package uses, and
/// load only the bundled plugins those need; `hsm plan` plans (and loads) them all.
#[test]
fn run_and_env_of_a_package_plan_only_what_it_uses() {
    let dir = project(&[(
        "hsm.yaml",
        "version: 1\nproject: app\nprofile: managed-dev\npackages: [auth-service, rag-api]\n\
         services:\n  postgres:\n    profile: external-corp\n",
    )]);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let env = [("HSM_DATA_DIR", data_dir.as_str()), ("CORP_DB_PASSWORD", "s3cret"), ("PATH", "/usr/bin:/bin")];
    let plugins = |stderr: &str| -> Vec<String> {
        let mut loaded: Vec<String> =
            stderr.lines().filter_map(|l| l.strip_prefix("plugin ")?.split('@').next().map(str::to_string)).collect();
        loaded.sort();
        loaded
    };

    let run = run_in(dir.path(), &["-v", "run", "auth-service", "--", "sh", "-c", "echo \"$DB_HOST $DB_NAME\""], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "10.0.0.50 auth\n");
    assert_eq!(plugins(&run.stderr), ["postgres"], "{}", run.stderr);
    assert!(run.stderr.contains("plugins planned 1 service(s)"), "{}", run.stderr);

    let run = run_in(dir.path(), &["-v", "env", "rag-api"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(plugins(&run.stderr), ["chunker", "qdrant"], "{}", run.stderr);
    let names: Vec<&str> = run.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    assert_eq!(names, ["CHUNKER_URL", "QDRANT_URL", "QDRANT_COLLECTION"], "{}", run.stdout);
    assert!(run.stdout.contains("QDRANT_COLLECTION=documents\n"), "{}", run.stdout);

    // The whole project: every service, the Python packages' one too.
    let run = run_in(dir.path(), &["-v", "plan"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(plugins(&run.stderr), ["chunker", "postgres", "qdrant", "uv-package"], "{}", run.stderr);
    assert!(run.stderr.contains("plugins planned 4 service(s)"), "{}", run.stderr);

    // Each package's environment is the one the whole plan gives it.
    let plan: serde_json::Value = serde_json::from_str(&run_in(dir.path(), &["plan", "--json"], &env).stdout).unwrap();
    for package in ["auth-service", "rag-api", "rag-ingest"] {
        let mut whole = serde_json::Map::new();
        for service in plan["services"].as_array().unwrap() {
            for e in service["env"].as_array().unwrap().iter().filter(|e| e["consumer"]["name"] == package) {
                whole.extend(e["vars"].as_object().unwrap().clone());
            }
        }
        let scoped = run_in(dir.path(), &["env", package, "--format", "json"], &env);
        assert_eq!(scoped.code, 0, "{}", scoped.stderr);
        assert!(!whole.is_empty(), "{package}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&scoped.stdout).unwrap(),
            serde_json::Value::Object(whole)
        );
    }

    // A package the project does not have: nothing is loaded, and the error names it.
    let run = run_in(dir.path(), &["-v", "run", "auth-servce", "--", "true"], &env);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `auth-service`?"), "{}", run.stderr);
    assert_eq!(plugins(&run.stderr), Vec::<String>::new(), "{}", run.stderr);
}
