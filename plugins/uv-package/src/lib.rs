//! The bundled `uv-package` backend: the project's Python packages. The host gives
//! it one service, `python`, whose contributions are the packages hsm.yaml selects
//! (each with its source); it merges them, refusing one package asked from two
//! different sources, and plans one uv install of all of them.

use hsm_sdk::*;

/// The plugin.
pub struct UvPackage;

impl Backend for UvPackage {
    fn describe() -> PluginInfo {
        PluginInfo::new("uv-package", env!("CARGO_PKG_VERSION"), ["uv-package"])
            .param("name", "The package's name", true)
            .param("pypi", "A requirement resolved from the index, such as `auth-service>=1.2`", false)
            .param("path", "A local project folder, installed as a copy", false)
            .param("editable", "A local project folder, installed as a link", false)
            .capability(Capability::UvInstall)
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        let mut packages: Vec<(String, usize, PackageSource)> = Vec::new();
        // Projects list thousands of packages: look them up by name, not by scanning.
        let mut by_name: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, c) in req.contributions.iter().enumerate() {
            let (name, source) = package(&c.params).map_err(|(key, m)| MergeError::invalid(m, key, Some(i)))?;
            match by_name.get(&name) {
                Some(&k) if packages[k].2 != source => {
                    return Err(MergeError::conflict(
                        format!("package `{name}` is asked for from two different sources"),
                        "source",
                        [packages[k].1, i],
                    )
                    .hint(format!("ask for `{name}` from one source")));
                }
                Some(_) => {}
                None => {
                    by_name.insert(name.clone(), packages.len());
                    packages.push((name, i, source));
                }
            }
        }
        let list = packages
            .into_iter()
            .map(|(name, _, source)| {
                let (key, value) = match source {
                    PackageSource::Pypi(s) => ("pypi", s),
                    PackageSource::Path(s) => ("path", s),
                    PackageSource::Editable(s) => ("editable", s),
                };
                Value::map([("name", Value::from(name)), (key, Value::from(value))])
            })
            .collect();
        Ok(Value::map([("packages", Value::List(list))]))
    }

    fn plan(req: PlanRequest) -> Result<Plan, PlanError> {
        let mut install = Vec::new();
        for p in req.config.get("packages").and_then(Value::as_list).unwrap_or_default() {
            let (name, source) = package(p).map_err(|(key, m)| PlanError::at(key, m))?;
            install.push(PythonPackage { name, source });
        }
        let mut plan = Plan::new();
        if !install.is_empty() {
            plan.action(Action::UvInstall(install));
        }
        Ok(plan)
    }
}

/// Reads `{name, pypi | path | editable}`.
fn package(params: &Value) -> Result<(String, PackageSource), (&'static str, String)> {
    let name = params.get_str("name").ok_or(("name", "a package needs a plain `name`".to_string()))?;
    let mut sources = Vec::new();
    for key in ["pypi", "path", "editable"] {
        if let Some(v) = params.get(key) {
            let s = v.as_str().ok_or((key, format!("`{key}` of `{name}` must be a plain string")))?;
            sources.push(match key {
                "pypi" => PackageSource::Pypi(s.to_string()),
                "path" => PackageSource::Path(s.to_string()),
                _ => PackageSource::Editable(s.to_string()),
            });
        }
    }
    match sources.len() {
        1 => Ok((name.to_string(), sources.remove(0))),
        0 => Err(("name", format!("package `{name}` has no source (`pypi`, `path` or `editable`)"))),
        _ => Err(("name", format!("package `{name}` has more than one source"))),
    }
}

export_plugin!(UvPackage);

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sdk::testing::*;

    fn pkg(name: &str, key: &str, value: &str) -> Value {
        Value::map([("name", name.into()), (key, value.into())])
    }

    #[test]
    fn installs_every_package_from_its_source() {
        let req = merge_request("python", "uv-package")
            .contribution("core", pkg("core", "editable", "/src/core"))
            .contribution("api", pkg("api", "editable", "/src/api"))
            .contribution("requests", pkg("requests", "pypi", "requests>=2"))
            .contribution("core", pkg("core", "editable", "/src/core"))
            .build();
        let merged = UvPackage::merge(req).unwrap();
        let plan = UvPackage::plan(plan_request("python", "uv-package", merged).build()).unwrap();
        let [Action::UvInstall(install)] = plan.actions.as_slice() else { panic!("expected one install") };
        assert_eq!(
            install,
            &[
                PythonPackage { name: "core".into(), source: PackageSource::Editable("/src/core".into()) },
                PythonPackage { name: "api".into(), source: PackageSource::Editable("/src/api".into()) },
                PythonPackage { name: "requests".into(), source: PackageSource::Pypi("requests>=2".into()) },
            ]
        );
    }

    #[test]
    fn one_package_from_two_sources_is_a_conflict() {
        let req = merge_request("python", "uv-package")
            .contribution("core", pkg("core", "editable", "/src/core"))
            .contribution("core", pkg("core", "pypi", "core==1.0"))
            .build();
        assert!(
            matches!(UvPackage::merge(req), Err(MergeError::Conflict { contributions, .. }) if contributions == [0, 1])
        );
    }
}
