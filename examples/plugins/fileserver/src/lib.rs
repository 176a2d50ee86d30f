//! An example third-party plugin: a `fileserver` service kind, a folder served over
//! HTTP. It uses nothing but `hsm-sdk`, the way a plugin written outside the hsm
//! repository would.
//!
//! Each package asks for a `path` prefix of its own on one shared server: merge
//! ([`SharedMerge`]) normalizes it (`docs` is `/docs/`), gives a package that asks
//! for none a folder named after it, and refuses two packages asking for one. Managed: a `python3 -m http.server` container serving a named
//! volume, with an init (python3 as PID 1 ignores SIGTERM, so every stop would wait
//! Docker's 10 s), each package's folder made, ready when `/` answers over HTTP.
//! External: the profile's `url`. Each package gets `FILESERVER_URL`, the server's
//! URL and its prefix.

use hsm_sdk::*;

/// The plugin.
pub struct FileServer;

const PORT: u16 = 8000;

impl Backend for FileServer {
    fn describe() -> PluginInfo {
        PluginInfo::new("fileserver", env!("CARGO_PKG_VERSION"), ["fileserver"])
            .param("path", "The URL prefix of this package's files, such as `/docs`; each package needs its own", false)
            .param("image", "An image with `python3` (default `python:3.12-slim`); all packages must agree", false)
            .setting("url", "The URL of a file server running elsewhere, without a trailing `/`", true)
            .capability(Capability::Containers)
            .capability(Capability::Exec)
            .variable("FILESERVER_URL", "The package's folder on the server, as a URL ending in `/`")
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        // A package that asks for no prefix gets one named after it.
        let named = |package: Option<&str>| Value::from(package.unwrap_or("project"));
        let merge = SharedMerge::new(&Self::describe()).unique("path").default_for("path", named);
        merge.check("path", prefix).merge(&req).map(Value::from)
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        req.check_settings(&Self::describe())?;
        let paths: Vec<&str> = req.consumers.iter().map(|c| req.merged_for(c).get_str("path").unwrap_or("/")).collect();
        let mut plan = Plan::new();
        let url = match req.profile.mode {
            Mode::External => req.url_setting("url")?,
            Mode::Managed => {
                let image = req.param("image").and_then(Value::as_str).unwrap_or("python:3.12-slim");
                let serve = ["python3", "-m", "http.server", "8000", "--directory", "/srv"];
                plan.action(Container::new("server", image).port(PORT).volume("files", "/srv").command(serve).init());
                let folders = paths.iter().map(|p| format!("/srv{p}"));
                plan.action(Exec::new("server", ["mkdir".to_string(), "-p".into()].into_iter().chain(folders)));
                plan.action(Wait::new(Probe::Http(HttpProbe::new("server", PORT, "/"))));
                req.published("server", PORT).url("http")
            }
        };
        for (consumer, path) in req.consumers.iter().zip(paths) {
            plan.env(consumer, "FILESERVER_URL", text!(url.clone(), path));
        }
        Ok(plan)
    }
}

/// A prefix as `/a/b/`: segments of letters, digits, `-`, `_` and `.`, none all dots.
fn prefix(value: &Value) -> Result<Value, String> {
    let path = value.as_str().unwrap_or("..").trim_matches('/');
    let fine =
        |s: &str| !s.trim_matches('.').is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    match path.split('/').all(fine) {
        true => Ok(format!("/{path}/").into()),
        false => Err(format!("`path` must be a prefix such as `/docs`, not `{}`", value.to_text().unwrap_or_default())),
    }
}

export_plugin!(FileServer);

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sdk::testing::*;

    fn path(p: &str) -> Value {
        Value::map([("path", p.into())])
    }

    fn two_packages() -> MergeRequest {
        merge_request("files", "fileserver")
            .contribution("docs", path("docs"))
            .contribution("site", path("/www/"))
            .build()
    }

    #[test]
    fn each_package_gets_its_folder_on_one_server() {
        let merged = FileServer::merge(two_packages()).unwrap();
        let req =
            plan_request("files", "fileserver", merged).consumer("docs", Value::Null).consumer("site", Value::Null);
        let plan = FileServer::plan(req.build()).unwrap();
        let Action::EnsureContainer(server) = &plan.actions[0] else { panic!("expected the server") };
        assert!(server.init, "python3 as PID 1 would ignore SIGTERM");
        assert_eq!(server.image, "python:3.12-slim");
        let Action::Exec(mkdir) = &plan.actions[1] else { panic!("expected the folders") };
        assert_eq!(
            mkdir.command.iter().map(Text::to_string).collect::<Vec<_>>(),
            ["mkdir", "-p", "/srv/docs/", "/srv/www/"]
        );
        assert!(matches!(&plan.actions[2], Action::Wait(Wait { probe: Probe::Http(h), .. }) if h.path == "/"));
        let url = |p: &str| plan.env_of(Some(p)).unwrap()[0].1.to_string();
        assert_eq!(url("docs"), "http://127.0.0.1:${hsm:port:server:8000}/docs/");
        assert_eq!(url("site"), "http://127.0.0.1:${hsm:port:server:8000}/www/");
    }

    #[test]
    fn two_packages_with_one_prefix_conflict() {
        let req =
            merge_request("files", "fileserver").contribution("docs", path("/docs")).contribution("api", path("docs/"));
        assert_eq!(
            FileServer::merge(req.build()).unwrap_err(),
            MergeError::conflict("`docs` and `api` both ask for `path` `/docs/`", "path", [0, 1])
                .hint("give each package its own `path`")
        );
        let req = merge_request("files", "fileserver").contribution("docs", path("../etc"));
        assert_eq!(
            FileServer::merge(req.build()).unwrap_err(),
            MergeError::invalid("`path` must be a prefix such as `/docs`, not `../etc`", "path", Some(0))
        );
    }

    #[test]
    fn external_mode_hands_out_the_profiles_url() {
        let merged = FileServer::merge(two_packages()).unwrap();
        let settings = Value::map([("url", "https://files.example.com".into())]);
        let req =
            plan_request("files", "fileserver", merged).external("remote", settings).consumer("docs", Value::Null);
        let plan = FileServer::plan(req.build()).unwrap();
        assert!(plan.actions.is_empty());
        assert_eq!(plan.env_of(Some("docs")).unwrap()[0].1.to_string(), "https://files.example.com/docs/");
        let typo =
            plan_request("files", "fileserver", Value::Null).external("remote", Value::map([("uri", "x".into())]));
        assert_eq!(FileServer::plan(typo.build()).unwrap_err().key.as_deref(), Some("uri"));
    }

    /// The same requests, through the compiled component in hsm's real runtime.
    #[test]
    fn the_component_behaves_like_the_code() {
        use hsm_sdk_host::ComponentPlugin;
        let wasm = build_plugin(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME")).unwrap();
        let plugin = ComponentPlugin::load(&wasm).unwrap();
        assert_eq!(plugin.describe(), FileServer::describe());
        let merged = plugin.merge(two_packages()).unwrap();
        assert_eq!(merged, FileServer::merge(two_packages()).unwrap());
        let req = plan_request("files", "fileserver", merged).consumer("docs", Value::Null).build();
        assert_eq!(plugin.plan(req.clone()).unwrap(), FileServer::plan(req).unwrap());
        let clash = merge_request("files", "fileserver").contribution("a", path("/x")).contribution("b", path("x"));
        assert_eq!(plugin.merge(clash.clone().build()).unwrap_err().to_string(), {
            let e = FileServer::merge(clash.build()).unwrap_err();
            hsm_sdk_host::ComponentError::Merge(e).to_string()
        });
    }
}
