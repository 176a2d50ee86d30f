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
    // Nothing else speaks first: a setting jemalloc can't honour would be
    // complained about here, on every start.
    assert_eq!(version.stderr, "");
}

#[test]
#[cfg(all(target_os = "linux", not(target_arch = "arm")))]
fn the_allocator_is_jemalloc_with_one_arena_and_huge_pages() {
    // The setting is a symbol jemalloc looks up by name: misnamed, it would be
    // ignored without a word. jemalloc's statistics, printed as it exits, say what
    // it read.
    let run = support::hsm(&["--version"], &[("_RJEM_MALLOC_CONF", "stats_print:true")]);
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("Global variable malloc_conf: \"narenas:1,thp:always\""), "{}", run.stderr);
    assert!(run.stderr.contains("opt.narenas: 1\n"), "{}", run.stderr);
    // A kernel without transparent huge pages leaves jemalloc without them.
    let thp = match std::fs::exists("/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(true) => "always",
        _ => "not supported",
    };
    assert!(run.stderr.contains(&format!("opt.thp: \"{thp}\"\n")), "{}", run.stderr);
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
    let plugins = "plugin postgres@0.1.0 (bundled) serves postgres\nplugin qdrant@0.1.0 (bundled) serves qdrant\nplugin chunker@0.1.0 (bundled) serves chunker\nplugin uv-package@0.1.0 (bundled) serves uv-package\n";
    assert_eq!(
        run.stderr,
        format!(
            "read hsm.yaml\nread .env\nread reg.yaml\n{plugins}plugins planned 2 service(s); 0 came from earlier runs\n`app` is valid: 1 package, 1 service\n"
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

#[test]
fn the_registry_cache_gives_the_same_plan_and_never_hides_errors() {
    let dir = project(&[("hsm.yaml", SECRET_PROJECT), ("reg.yaml", SECRET_REGISTRY), (".env", "DB_PASSWORD=x\n")]);
    let (cache, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cache_dir, data_dir) = (cache.path().display().to_string(), data.path().display().to_string());
    let env = [("HSM_CACHE_DIR", cache_dir.as_str()), ("HSM_DATA_DIR", data_dir.as_str())];
    let fresh = run_in(dir.path(), &["plan", "--json", "--no-cache"], &env);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none(), "--no-cache wrote the cache");
    assert!(std::fs::read_dir(data.path()).unwrap().next().is_none(), "--no-cache made a user key");
    // Entries are made with the user's key, which the first run that plans creates.
    let first = run_in(dir.path(), &["plan", "--json"], &env);
    assert!(data.path().join("secret.key").is_file());
    // `validate` never reuses a printed plan, so it reads the registry.
    let second = run_in(dir.path(), &["validate"], &env);
    assert_eq!(second.code, 0, "{}", second.stderr);
    // One folder for this build of hsm, holding the entries.
    let build: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(build.len(), 1);
    let entries_dir = std::fs::read_dir(&build[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("registry-v"))
        .expect("a folder of registry entries");
    let entries = std::fs::read_dir(&entries_dir).unwrap().count();
    assert_eq!(entries, 1, "one entry per registry file");
    std::fs::remove_dir_all(build[0].join("plans")).unwrap();
    let third = run_in(dir.path(), &["plan", "--json"], &env);
    assert_eq!((first.stdout.as_str(), third.stdout.as_str()), (fresh.stdout.as_str(), fresh.stdout.as_str()));

    // A changed file is a miss; a file with a problem is never stored.
    std::fs::write(dir.path().join("reg.yaml"), SECRET_REGISTRY.replace("pypi: p", "pypi: p\n    pipy: q")).unwrap();
    for _ in 0..2 {
        let run = run_in(dir.path(), &["--color", "never", "validate"], &env);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("error: unknown field `pipy`"), "{}", run.stderr);
    }
    assert_eq!(std::fs::read_dir(&entries_dir).unwrap().count(), 1);

    // A corrupt entry is a miss, not an error.
    std::fs::write(dir.path().join("reg.yaml"), SECRET_REGISTRY).unwrap();
    for entry in std::fs::read_dir(&entries_dir).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not an entry").unwrap();
    }
    let run = run_in(dir.path(), &["plan", "--json"], &env);
    assert_eq!((run.code, run.stdout.as_str()), (0, fresh.stdout.as_str()), "{}", run.stderr);
}

/// A service planned as in an earlier run is taken from the memo of plugin answers:
/// same plan, no plugin call, no secret value in the file; a change to one service
/// asks its plugin again, and only its plugin.
#[test]
fn plugin_answers_are_remembered_per_service() {
    let secret = "hunter2-not-in-any-file";
    let dir = project(&[
        ("hsm.yaml", SECRET_PROJECT),
        ("reg.yaml", SECRET_REGISTRY),
        (".env", &format!("DB_PASSWORD={secret}\n")),
    ]);
    let (cache, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cache_dir, data_dir) = (cache.path().display().to_string(), data.path().display().to_string());
    let env = [("HSM_CACHE_DIR", cache_dir.as_str()), ("HSM_DATA_DIR", data_dir.as_str())];
    let planned_by_plugins = |run: &support::Run| {
        let line = run.stderr.lines().find(|l| l.starts_with("plugins planned")).expect("the -v line");
        line.split_whitespace().find_map(|w| w.parse::<usize>().ok()).expect("a count")
    };
    // `validate` plans like `plan` but prints no plan, so it never reuses a printed one.
    let fresh = run_in(dir.path(), &["-v", "validate", "--no-cache"], &env);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert_eq!(planned_by_plugins(&fresh), 2, "the chunker service and the Python packages");
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none(), "--no-cache wrote the cache");

    let first = run_in(dir.path(), &["-v", "validate"], &env);
    assert_eq!((first.code, planned_by_plugins(&first)), (0, 2), "{}", first.stderr);
    let second = run_in(dir.path(), &["-v", "validate"], &env);
    assert_eq!((second.code, planned_by_plugins(&second)), (0, 0), "{}", second.stderr);

    let build = std::fs::read_dir(cache.path()).unwrap().next().unwrap().unwrap().path();
    let memos: Vec<_> = std::fs::read_dir(build.join("plans")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(memos.len(), 1, "one memo for the project");
    let bytes = std::fs::read(&memos[0]).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret's value was written");
    assert!(bytes.windows(14).any(|w| w == b"${DB_PASSWORD}"), "the reference is kept");

    // One service changes: only its plugin is asked again.
    std::fs::write(dir.path().join("reg.yaml"), SECRET_REGISTRY.replace("x/chunker:1", "x/chunker:2")).unwrap();
    let changed = run_in(dir.path(), &["-v", "plan", "--json", "--no-cache"], &env);
    let changed_memo = run_in(dir.path(), &["-v", "plan", "--json"], &env);
    assert_eq!((changed_memo.code, planned_by_plugins(&changed_memo)), (0, 1), "{}", changed_memo.stderr);
    assert_eq!(changed_memo.stdout, changed.stdout);
    assert!(changed.stdout.contains("x/chunker:2") && !changed.stdout.contains("x/chunker:1"));

    // A damaged memo, or one made with another key, is a miss, not an error.
    std::fs::write(&memos[0], b"HSMMEMO2 damaged").unwrap();
    let damaged = run_in(dir.path(), &["-v", "validate"], &env);
    assert_eq!((damaged.code, planned_by_plugins(&damaged)), (0, 2), "{}", damaged.stderr);
    let other_key = tempfile::tempdir().unwrap();
    let other = other_key.path().display().to_string();
    let stranger = run_in(dir.path(), &["-v", "validate"], &[env[0], ("HSM_DATA_DIR", other.as_str())]);
    assert_eq!((stranger.code, planned_by_plugins(&stranger)), (0, 2), "{}", stranger.stderr);
}

/// `hsm plan` prints a plan again, without loading or planning anything, only while
/// everything it was made from is as it was: files, folders and variables.
#[test]
fn a_printed_plan_is_reused_only_while_its_inputs_are_unchanged() {
    let secret = "hunter2-not-in-any-file";
    let dir = project(&[
        ("hsm.yaml", &SECRET_PROJECT.replace("./reg.yaml", "./reg")),
        ("reg/a.yaml", SECRET_REGISTRY),
        (".env", &format!("DB_PASSWORD={secret}\n")),
    ]);
    let (cache, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cache_dir, data_dir) = (cache.path().display().to_string(), data.path().display().to_string());
    let env = [("HSM_CACHE_DIR", cache_dir.as_str()), ("HSM_DATA_DIR", data_dir.as_str())];
    let reused = |run: &support::Run| run.stderr.contains("printing it as it was");
    let plan = |extra: &[(&str, &str)]| {
        let mut all = env.to_vec();
        all.extend_from_slice(extra);
        let run = run_in(dir.path(), &["-v", "plan", "--json"], &all);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run
    };

    let first = plan(&[]);
    assert!(!reused(&first), "{}", first.stderr);
    let again = plan(&[]);
    assert!(reused(&again), "{}", again.stderr);
    assert_eq!(again.stdout, first.stdout);
    assert!(again.stderr.contains("read hsm.yaml\nread .env\nread reg/a.yaml\n"), "{}", again.stderr);
    // Text is a different printout, kept apart.
    let text = run_in(dir.path(), &["plan"], &env);
    assert!(text.stdout.starts_with("project app"), "{}", text.stdout);
    assert!(reused(&plan(&[])));

    let build = std::fs::read_dir(cache.path()).unwrap().next().unwrap().unwrap().path();
    for entry in std::fs::read_dir(build.join("plans")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret's value was written");
    }

    // A variable interpolation reads, set where it was not: not reused.
    let set = plan(&[("DB_NAME", "other")]);
    assert!(!reused(&set), "{}", set.stderr);
    assert!(reused(&plan(&[("DB_NAME", "other")])));
    // Its value changes (a secret's value is not printed, but may matter): not reused.
    assert!(!reused(&plan(&[("DB_NAME", "changed")])));
    // A variable nothing reads: reused.
    assert!(reused(&plan(&[("DB_NAME", "changed"), ("UNRELATED", "x")])));

    // `.env` changes: not reused.
    std::fs::write(dir.path().join(".env"), "DB_PASSWORD=rotated\n").unwrap();
    assert!(!reused(&plan(&[])));
    assert!(reused(&plan(&[])));
    // A registry file appears in the registry folder: not reused, and it is read.
    std::fs::write(dir.path().join("reg/b.yaml"), "packages:\n  q: { pypi: q }\n").unwrap();
    let added = plan(&[]);
    assert!(!reused(&added) && added.stderr.contains("read reg/b.yaml"), "{}", added.stderr);
    // A registry file changes: not reused, and the plan shows the change.
    std::fs::write(dir.path().join("reg/a.yaml"), SECRET_REGISTRY.replace("x/chunker:1", "x/chunker:2")).unwrap();
    let changed = plan(&[]);
    assert!(!reused(&changed) && changed.stdout.contains("x/chunker:2"), "{}", changed.stderr);

    // An entry changed by anyone but hsm is a miss, and the plan is made afresh.
    for entry in std::fs::read_dir(build.join("plans")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".json.out") {
            // Changed in place, same length: only the MAC tells.
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.windows(11).position(|w| w == b"x/chunker:2").expect("the image is in the entry");
            bytes[at..at + 11].copy_from_slice(b"x/chunker:6");
            std::fs::write(&path, &bytes).unwrap();
        }
    }
    let forged = plan(&[]);
    assert!(!reused(&forged) && forged.stdout.contains("x/chunker:2"), "{}", forged.stderr);
    assert!(!forged.stdout.contains("x/chunker:6"));
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

/// Each rebuild of hsm caches in a folder of its own; the first run of a new build
/// removes other builds' folders nothing has written to for a month, and nothing
/// else.
#[test]
fn the_first_run_of_a_build_removes_long_unused_build_folders() {
    let dir = project(&[("hsm.yaml", SECRET_PROJECT), ("reg.yaml", SECRET_REGISTRY), (".env", "DB_PASSWORD=x\n")]);
    let (cache, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60 * 24 * 3600);
    let make = |folder: &str, subfolders: &[&str], old: bool| {
        let path = cache.path().join(folder);
        for sub in subfolders {
            std::fs::create_dir_all(path.join(sub)).unwrap();
            if old {
                std::fs::File::open(path.join(sub)).unwrap().set_modified(long_ago).unwrap();
            }
        }
        if old {
            std::fs::File::open(&path).unwrap().set_modified(long_ago).unwrap();
        }
        path
    };
    let unused = make("0.0.9-aaaaaaaaaaaaaaaa-10-20-30", &["plans", "registry-v4"], true);
    let recent = make("0.0.8-bbbbbbbbbbbbbbbb-10-20-30", &["plans"], false);
    let not_only_caches = make("0.0.7-cccccccccccccccc-10-20-30", &["plans", "notes"], true);
    let compiled_plugins = make("plugins", &["0.1.0-0123"], true);
    let not_a_build = make("2024-01-02-backup-x", &["plans"], true);

    let (cache_dir, data_dir) = (cache.path().display().to_string(), data.path().display().to_string());
    let env = [("HSM_CACHE_DIR", cache_dir.as_str()), ("HSM_DATA_DIR", data_dir.as_str())];
    let run = run_in(dir.path(), &["validate"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!unused.exists(), "a build folder unused for 60 days was not removed");
    assert!(recent.exists() && not_only_caches.exists() && compiled_plugins.exists() && not_a_build.exists());
    let folders = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(folders, 5, "this build's folder and the four others kept");
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
