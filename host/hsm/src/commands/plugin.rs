//! `hsm plugin new | check | list`: the tools of plugin authors and of the people
//! who decide which plugins a project trusts.

use std::fmt::Write as _;
use std::path::PathBuf;

use hsm_model::{Diagnostic, Sources};
use hsm_runtime::{PluginHost, PluginInfo, PluginSource};
use serde::Serialize;

use crate::Failure;
use crate::cli::{GlobalArgs, PluginCheckArgs, PluginCommand, PluginListArgs, PluginNewArgs, PluginPinArgs};
use crate::output::{Output, Style, paint};
use crate::project;

/// Runs `hsm plugin …`.
pub(crate) fn run(global: &GlobalArgs, command: &PluginCommand, out: &Output) -> Result<(), Failure> {
    match command {
        PluginCommand::New(args) => new(args, out),
        PluginCommand::Check(args) => check(args, out),
        PluginCommand::List(args) => list(global, args, out),
        PluginCommand::Pin(args) => pin(global, args, out),
    }
}

fn input_error(message: String, hint: Option<String>) -> Failure {
    let mut d = Diagnostic::new(message);
    if let Some(hint) = hint {
        d = d.hint(hint);
    }
    Failure::Input(Sources::new(), d.into())
}

fn new(args: &PluginNewArgs, out: &Output) -> Result<(), Failure> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(input_error(
            format!("`{name}` is not a valid plugin name"),
            Some("use lowercase letters, digits and `-`, starting with a letter, such as `redis`".into()),
        ));
    }
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(input_error(
            format!("`{}` already exists and is not empty", dir.display()),
            Some("choose another folder with `--path`".into()),
        ));
    }
    // By default the SDK of this hsm's version from crates.io, which a user who
    // installed hsm can build against; `--sdk-path` for a checkout (hsm's own tests).
    let sdk = match &args.sdk_path {
        Some(sdk) => {
            if !sdk.join("Cargo.toml").is_file() {
                return Err(input_error(
                    format!("`{}` is not hsm's SDK folder (it has no `Cargo.toml`)", sdk.display()),
                    Some("give the `sdk/` folder of an hsm checkout".into()),
                ));
            }
            let sdk = sdk.canonicalize().unwrap_or_else(|_| sdk.clone());
            format!("{{ path = {:?} }}", sdk.display().to_string())
        }
        None => {
            // Until the SDK is on crates.io, a version dependency does not build:
            // say so rather than leave the author with cargo's "no matching package".
            out.warning(&format!(
                "the scaffold depends on `hsm-sdk = \"{}\"`, which is not published on crates.io yet: until it is, build against a checkout of hsm with `--sdk-path DIR/sdk`",
                env!("CARGO_PKG_VERSION")
            ));
            format!("\"{}\"", env!("CARGO_PKG_VERSION"))
        }
    };
    let crate_name = name.replace('-', "_");
    let env_prefix = name.to_ascii_uppercase().replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{env_prefix}}", &env_prefix)
            .replace("{{sdk}}", &sdk)
    };
    let files = [
        ("Cargo.toml", fill(include_str!("../../templates/plugin/Cargo.toml.in"))),
        ("src/lib.rs", fill(include_str!("../../templates/plugin/lib.rs.in"))),
        ("README.md", fill(include_str!("../../templates/plugin/README.md.in"))),
        (".gitignore", include_str!("../../templates/plugin/gitignore.in").to_string()),
    ];
    for (path, contents) in files {
        let path = dir.join(path);
        let written =
            path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, contents));
        written.map_err(|e| Failure::Job(format!("cannot write `{}`: {e}", path.display())))?;
    }
    out.status(&format!("created plugin `{name}` in `{}`", dir.display()));
    out.status(&format!(
        "next: `cd {}`, `cargo test`, then `cargo build --release --target wasm32-wasip2`",
        dir.display()
    ));
    Ok(())
}

/// What `hsm plugin check --json` prints.
#[derive(Serialize)]
struct CheckReport<'a> {
    file: String,
    sha256: &'a str,
    wit_version: &'a str,
    #[serde(flatten)]
    info: &'a PluginInfo,
}

fn check(args: &PluginCheckArgs, out: &Output) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.file).map_err(|e| {
        input_error(
            format!("cannot read `{}`: {e}", args.file.display()),
            Some("give the path of a `.wasm` component".into()),
        )
    })?;
    let host = PluginHost::default();
    let plugin = host
        .load_component(&bytes, PluginSource::File(args.file.clone()))
        .map_err(|e| input_error(e.to_string(), hsm_model::Explain::hint(&e)))?;
    let info = plugin.info();
    if args.json {
        let report = CheckReport {
            file: args.file.display().to_string(),
            sha256: plugin.sha256(),
            wit_version: plugin.wit_version(),
            info,
        };
        return out.json(&report);
    }
    let color = out.color_out();
    let n = |s: &str| paint(color, Style::Name, s);
    let mut text = String::new();
    let _ = writeln!(text, "{} is a valid hsm plugin", args.file.display());
    let _ = writeln!(text, "  name          {}", n(&info.name));
    let _ = writeln!(text, "  version       {}", info.version);
    let _ = writeln!(text, "  wit           hsm:plugin@{}", plugin.wit_version());
    let _ = writeln!(text, "  sha256        {}", plugin.sha256());
    let _ = writeln!(text, "  kinds         {}", info.kinds.join(", "));
    let caps: Vec<&str> = info.capabilities.iter().map(|c| c.as_str()).collect();
    let _ = writeln!(text, "  capabilities  {}", if caps.is_empty() { "none".to_string() } else { caps.join(", ") });
    match &info.variables {
        Some(vars) if vars.is_empty() => {
            let _ = writeln!(text, "  variables     none: it gives its consumers no environment");
        }
        Some(vars) => {
            let _ = writeln!(text, "  variables     what it may set in the environment of the programs you run");
            let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
            for v in vars {
                let _ = writeln!(text, "    {:<width$}  {}", v.name, v.description);
            }
        }
        None => {
            let _ = writeln!(
                text,
                "  variables     not declared (WIT {} can't): it may set only those hsm.yaml grants it by name, under `plugins.{}.env`",
                plugin.wit_version(),
                info.name
            );
        }
    }
    for (title, specs) in [("params", &info.params), ("settings", &info.settings)] {
        if specs.is_empty() {
            continue;
        }
        let _ = writeln!(text, "  {title}");
        let width = specs.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in specs {
            let required = if s.required { " (required)" } else { "" };
            let _ = writeln!(text, "    {:<width$}  {}{required}", s.name, s.description);
        }
    }
    text.push_str(&entry(plugin.name(), plugin.sha256(), &caps, info.variables.is_none()));
    out.data(&text)
}

/// The `plugins:` entry of `hsm.yaml` that pins this build and grants what it
/// declares, ready to paste once reviewed (a plugin that can't declare its
/// variables gets them granted by name: a commented line to fill in).
fn entry(name: &str, sha256: &str, capabilities: &[&str], legacy: bool) -> String {
    let mut text = String::from("\nonce you have reviewed what it declares, add to hsm.yaml (it pins this build):\n\n");
    text.push_str(&format!("plugins:\n  {name}:\n    sha256: {sha256}\n"));
    if !capabilities.is_empty() {
        text.push_str(&format!("    grant: [{}]\n", capabilities.join(", ")));
    }
    if legacy {
        text.push_str("    # env: [NAME, …]   # the variables you let it set in your programs' environment\n");
    }
    text.push_str(
        "\n(while you iterate, a registry can name the `.wasm` by `path:`; after a rebuild, `hsm plugin check` gives the new sha256 to paste over the old)\n",
    );
    text
}

/// Writes a rebuilt plugin's digest wherever the project pins a plugin of its
/// name: the registry's declaration and `hsm.yaml`'s grant. Only the 64 hex
/// digits are replaced, in place: comments and layout stay.
fn pin(global: &GlobalArgs, args: &PluginPinArgs, out: &Output) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.file).map_err(|e| {
        input_error(format!("cannot read `{}`: {e}", args.file.display()), Some("give the rebuilt `.wasm`".into()))
    })?;
    let host = PluginHost::default();
    let plugin = host
        .load_component(&bytes, PluginSource::File(args.file.clone()))
        .map_err(|e| input_error(e.to_string(), hsm_model::Explain::hint(&e)))?;
    let (name, digest) = (plugin.name().to_string(), plugin.sha256().to_string());
    let (sources, loaded) = project::load(global, out)?;
    let pins =
        loaded.plugins.iter().filter(|d| d.name.name == name).map(|d| (d.sha256_span, d.sha256.clone())).chain(
            loaded.project.grants.iter().filter(|g| g.name.name == name).map(|g| (g.sha256_span, g.sha256.clone())),
        );
    // Edits per file, the last in the file first (offsets stay valid).
    let mut edits: std::collections::BTreeMap<hsm_model::FileId, Vec<(usize, usize, String)>> = Default::default();
    for (span, old) in pins {
        if old != digest {
            edits.entry(span.file).or_default().push((span.start, span.len, old));
        }
    }
    let known =
        loaded.plugins.iter().any(|d| d.name.name == name) || loaded.project.grants.iter().any(|g| g.name.name == name);
    if !known {
        return Err(input_error(
            format!("the project pins no plugin named `{name}`"),
            Some(format!(
                "declare it in a registry (`plugins: {{ {name}: {{ path: …, sha256: {digest} }} }}`) and grant it in hsm.yaml; `hsm plugin check` prints the entry"
            )),
        ));
    }
    if edits.is_empty() {
        out.status(&format!("`{name}` is pinned to this build already ({digest})"));
        return Ok(());
    }
    for (file, mut list) in edits {
        let source = sources.get(file);
        let Some(path) = source.path.clone().filter(|_| !source.display.starts_with("git+")) else {
            return Err(input_error(
                format!("`{name}` is pinned in `{}`, which hsm can't edit", source.display),
                Some(
                    "re-pin it where that file comes from (a git registry: commit there, then `hsm lock --update`)"
                        .into(),
                ),
            ));
        };
        let mut text = source.text.to_string();
        list.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (start, len, old) in list {
            let written = text.get(start..start + len).unwrap_or_default();
            let Some(at) = written.to_ascii_lowercase().find(&old) else {
                return Err(Failure::Job(format!("`{}` changed while hsm read it; run again", source.display)));
            };
            text.replace_range(start + at..start + at + old.len(), &digest);
        }
        let tmp = path.with_extension("hsm-pin.tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Failure::Job(format!("cannot write `{}`: {e}", path.display())))?;
        out.status(&format!("pinned `{name}` to {digest} in {}", source.display));
    }
    out.warning(&format!(
        "the grant in hsm.yaml now applies to this build of `{name}`: review what it declares with `hsm plugin check {}`",
        args.file.display()
    ));
    Ok(())
}

/// One line of `hsm plugin list`.
#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    version: &'a str,
    kinds: &'a [String],
    source: &'a PluginSource,
    sha256: &'a str,
    declares: Vec<&'static str>,
    granted: Vec<&'static str>,
    /// The variables it declares; `None` when its WIT version can't declare them.
    variables: Option<Vec<&'a str>>,
    /// The variables `hsm.yaml` grants it by name.
    granted_env: Vec<&'a str>,
}

fn list(global: &GlobalArgs, args: &PluginListArgs, out: &Output) -> Result<(), Failure> {
    let cache = project::PluginCache::new(global);
    let (sources, loaded) = project::load(global, out)?;
    let (_, host, mut catalog) = project::catalog(&loaded, sources, out, &cache)?;
    project::load_bundled(&host, &mut catalog, &cache, &|_| true, out)?;
    let listed: Vec<Listed<'_>> = catalog
        .plugins()
        .iter()
        .map(|p| Listed {
            name: p.plugin.name(),
            version: &p.plugin.info().version,
            kinds: &p.plugin.info().kinds,
            source: p.plugin.source(),
            sha256: p.plugin.sha256(),
            declares: p.plugin.info().capabilities.iter().map(|c| c.as_str()).collect(),
            granted: p.grants.capabilities.iter().map(|c| c.as_str()).collect(),
            variables: p.plugin.info().variables.as_ref().map(|v| v.iter().map(|v| v.name.as_str()).collect()),
            granted_env: p.grants.variables.iter().map(String::as_str).collect(),
        })
        .collect();
    if args.json {
        return out.json(&listed);
    }
    let mut text = String::new();
    for l in &listed {
        let _ = writeln!(
            text,
            "{}@{}  {}  kinds: {}",
            paint(out.color_out(), Style::Name, l.name),
            l.version,
            l.source,
            l.kinds.join(", ")
        );
        let _ = writeln!(text, "  sha256   {}", l.sha256);
        let _ = writeln!(
            text,
            "  declares {}",
            if l.declares.is_empty() { "nothing".into() } else { l.declares.join(", ") }
        );
        let _ =
            writeln!(text, "  granted  {}", if l.granted.is_empty() { "nothing".into() } else { l.granted.join(", ") });
        let sets = match &l.variables {
            Some(v) if v.is_empty() => "no variable".to_string(),
            Some(v) => v.join(", "),
            None if l.granted_env.is_empty() => "no variable (it can't declare any; none granted in hsm.yaml)".into(),
            None => format!("{} (granted in hsm.yaml)", l.granted_env.join(", ")),
        };
        let _ = writeln!(text, "  sets     {sets}");
    }
    out.data(&text)
}
