//! The plugins a project can use, by the kinds they serve, each with what it was
//! granted. Bundled plugins get what they declare. Third-party plugins (declared by
//! a registry or by `hsm.yaml`) load only when the file's sha256 is the pinned one,
//! and get exactly what `hsm.yaml` grants the digest it reviewed; a kind served
//! twice is refused.

use std::collections::BTreeSet;
use std::path::Path;

use hsm_config::{Config, PluginGrant};
use hsm_model::{Diagnostic, Diagnostics};
use hsm_runtime::{BundledPlugin, CacheOutcome, CompileCache, Grants, LoadError, Plugin, PluginHost, PluginSource};
use sha2::Digest as _;

/// A plugin and what it may do.
#[derive(Debug)]
pub struct LoadedPlugin {
    /// The plugin.
    pub plugin: Plugin,
    /// Its grants.
    pub grants: Grants,
}

/// The plugins a project can use. The bundled ones are known by name and kinds
/// from the start and loaded when asked for ([`Catalog::load_bundled`]): a
/// project loads only the ones serving the kinds it uses.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The loaded plugins.
    plugins: Vec<LoadedPlugin>,
    /// The bundled plugins not loaded yet.
    unloaded: Vec<BundledPlugin>,
    /// What was granted to no use (a capability a plugin does not declare, say).
    warnings: Vec<Diagnostic>,
}

impl Catalog {
    /// The plugins compiled into hsm, none loaded yet.
    fn with_bundled_unloaded() -> Self {
        Self { unloaded: hsm_runtime::bundled_plugins().collect(), ..Self::default() }
    }

    /// Every plugin compiled into hsm, loaded, each granted what it declares.
    pub fn bundled(host: &PluginHost) -> Result<Self, LoadError> {
        let mut catalog = Self::with_bundled_unloaded();
        catalog.load_bundled(host, None, &|_| true)?;
        Ok(catalog)
    }

    /// Loads the bundled plugins not loaded yet that `wanted` picks by the kinds
    /// they serve, each granted what it declares. With `code_dir`, their native
    /// code is mapped from files there (see [`PluginHost::load_bundled_from`]).
    pub fn load_bundled(
        &mut self,
        host: &PluginHost,
        code_dir: Option<&Path>,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<(), LoadError> {
        let (load, keep): (Vec<BundledPlugin>, Vec<BundledPlugin>) =
            self.unloaded.iter().partition(|b| b.kinds.iter().any(|k| wanted(k)));
        if load.is_empty() {
            return Ok(());
        }
        let loaded = host.load_bundled_from(code_dir, &|name| load.iter().any(|b| b.name == name))?;
        self.unloaded = keep;
        for plugin in loaded {
            let grants = Grants::declared(plugin.info());
            self.plugins.push(LoadedPlugin { plugin, grants });
        }
        // The bundled ones first, in the order they are bundled in, then the
        // third-party ones in the order they were declared.
        let rank = |p: &LoadedPlugin| hsm_runtime::bundled_plugins().position(|b| b.name == p.plugin.name());
        self.plugins.sort_by_key(|p| rank(p).unwrap_or(usize::MAX));
        Ok(())
    }

    /// The bundled plugins (not loaded until [`Catalog::load_bundled`] asks for
    /// them) and every third-party plugin the configuration declares, loaded, with
    /// the grants `hsm.yaml` gives them. Nothing runs when a digest doesn't match, a
    /// component is invalid, a name or kind clashes or a grant is stale: every such
    /// problem is a diagnostic at the line that declares it.
    pub fn load(
        host: &PluginHost,
        config: &Config,
        cache: Option<&CompileCache<'_>>,
        report: &dyn Fn(&str),
    ) -> Result<Self, Diagnostics> {
        let mut catalog = Self::with_bundled_unloaded();
        let mut diags = Diagnostics::default();
        for def in &config.plugins {
            let bytes = match std::fs::read(&def.path) {
                Ok(b) => b,
                Err(e) => {
                    diags.push(
                        Diagnostic::new(format!("cannot read plugin `{}` at `{}`: {e}", def.name.name, def.written))
                            .at(def.path_span, "declared here")
                            .hint(format!("the path is relative to `{}`", def.declared_in)),
                    );
                    continue;
                }
            };
            let digest = hex::encode(sha2::Sha256::digest(&bytes));
            if digest != def.sha256 {
                diags.push(
                    Diagnostic::new(format!("plugin `{}` is not the file that was pinned", def.name.name))
                        .at(def.sha256_span, format!("pinned `{}`", def.sha256))
                        .note(format!("`{}` has sha256 `{digest}`", def.written))
                        .hint(format!("if you trust the new file, pin `{digest}`; otherwise restore the pinned one")),
                );
                continue;
            }
            let source = PluginSource::File(def.path.clone());
            let loaded = match cache {
                Some(cache) => cache.load(host, &bytes, source),
                None => host.load_component(&bytes, source).map(|p| (p, CacheOutcome::Compiled)),
            };
            let plugin = match loaded {
                Ok((plugin, outcome)) => {
                    report(&format!(
                        "plugin {} {} ({})",
                        def.name.name,
                        match outcome {
                            CacheOutcome::Hit => "loaded from the compile cache",
                            CacheOutcome::Compiled => "compiled",
                            CacheOutcome::Replaced => "compiled (a cache entry failed verification and was replaced)",
                        },
                        def.written
                    ));
                    plugin
                }
                Err(e) => {
                    diags.push(Diagnostic::new(e.to_string()).at(def.path_span, format!("plugin `{}`", def.name.name)));
                    continue;
                }
            };
            if catalog.is_bundled(plugin.name()) {
                diags.push(
                    Diagnostic::new(format!("plugin `{}` has the name of a plugin hsm bundles", def.name.name))
                        .at(def.name.span, "")
                        .hint("a third-party plugin needs a name of its own"),
                );
                continue;
            }
            if plugin.name() != def.name.name {
                diags.push(
                    Diagnostic::new(format!(
                        "the component declared as plugin `{}` calls itself `{}`",
                        def.name.name,
                        plugin.name()
                    ))
                    .at(def.name.span, "")
                    .hint(format!("declare it as `{}`", plugin.name())),
                );
                continue;
            }
            let grants = match config.project.grants.iter().find(|g| g.name.name == def.name.name) {
                None => Grants::default(),
                Some(g) if g.sha256 != digest => {
                    diags.push(
                        Diagnostic::new(format!(
                            "the grant for plugin `{}` is for another version of it",
                            def.name.name
                        ))
                        .at(g.sha256_span, "granted to this sha256")
                        .note(format!("the plugin is now `{digest}` (declared in `{}`)", def.declared_in))
                        .hint(format!(
                            "review the new version, then grant it again: `plugins.{}.sha256: {digest}` in hsm.yaml",
                            def.name.name
                        )),
                    );
                    continue;
                }
                Some(g) => match grants(&plugin, g, &mut catalog.warnings) {
                    Ok(grants) => grants,
                    Err(d) => {
                        diags.0.extend(d.0);
                        continue;
                    }
                },
            };
            if let Err((kind, existing)) = catalog.add(plugin, grants) {
                diags.push(
                    Diagnostic::new(format!(
                        "plugin `{}` serves kind `{kind}`, which plugin `{existing}` already serves",
                        def.name.name
                    ))
                    .at(def.name.span, "")
                    .hint("a kind has one plugin; remove one of them or use the other's kind"),
                );
            }
        }
        for g in &config.project.grants {
            if config.plugins.iter().any(|d| d.name.name == g.name.name) {
                continue;
            }
            let d = if catalog.is_bundled(&g.name.name) {
                Diagnostic::new(format!("plugin `{}` is bundled with hsm and needs no grant", g.name.name))
                    .at(g.name.span, "")
                    .hint("remove this entry")
            } else {
                let known: Vec<&str> = config.plugins.iter().map(|d| d.name.name.as_str()).collect();
                let d = Diagnostic::new(format!("no plugin `{}` is declared", g.name.name))
                    .at(g.name.span, "")
                    .note("a grant is for a plugin a registry or this file declares with `path` and `sha256`");
                match hsm_config::did_you_mean(&g.name.name, known.iter().copied()) {
                    Some(best) => d.hint(format!("did you mean `{best}`?")),
                    None => d.hint("add `path:` to declare the plugin here, or the registry that ships it"),
                }
            };
            diags.push(d);
        }
        diags.into_result(catalog)
    }

    /// Adds a plugin, unless one already serves one of its kinds (then returns the
    /// kind and the plugin that serves it).
    pub fn add(&mut self, plugin: Plugin, grants: Grants) -> Result<(), (String, String)> {
        for kind in &plugin.info().kinds {
            if let Some(existing) = self.unloaded.iter().find(|b| b.kinds.contains(&kind.as_str())) {
                return Err((kind.clone(), existing.name.to_string()));
            }
            if let Some(existing) = self.for_kind(kind) {
                return Err((kind.clone(), existing.plugin.name().to_string()));
            }
        }
        self.plugins.push(LoadedPlugin { plugin, grants });
        Ok(())
    }

    /// Whether hsm bundles a plugin of this name (loaded or not).
    fn is_bundled(&self, name: &str) -> bool {
        hsm_runtime::bundled_plugins().any(|b| b.name == name)
    }

    /// The loaded plugin serving a kind.
    pub fn for_kind(&self, kind: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.plugin.info().kinds.iter().any(|k| k == kind))
    }

    /// Every kind served, by the plugins loaded and the bundled ones not loaded yet.
    pub fn kinds(&self) -> BTreeSet<String> {
        let loaded = self.plugins.iter().flat_map(|p| p.plugin.info().kinds.iter().cloned());
        loaded.chain(self.unloaded.iter().flat_map(|b| b.kinds.iter().map(|k| k.to_string()))).collect()
    }

    /// The loaded plugins: the bundled ones in the order hsm bundles them, then the
    /// third-party ones in the order they were declared.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Warnings about the grants: parts that grant nothing.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

/// What `hsm.yaml` grants a plugin, checked against what it declares. A variable
/// granted by name must be one a plugin may set at all (an error otherwise); a
/// capability the plugin does not declare, or a variable granted to a plugin that
/// declares its own, grants nothing (a warning: the grant may be meant for another
/// version of the plugin, or for another plugin).
fn grants(plugin: &Plugin, g: &PluginGrant, warnings: &mut Vec<Diagnostic>) -> Result<Grants, Diagnostics> {
    let name = plugin.name();
    let info = plugin.info();
    let mut diags = Diagnostics::default();
    for (c, span) in &g.capabilities {
        let c = *c;
        if !info.capabilities.contains(&c) {
            warnings.push(
                Diagnostic::warning(format!("plugin `{name}` does not declare `{c}`, so this grant gives it nothing"))
                    .at(*span, "")
                    .note(format!(
                        "it declares {}",
                        hsm_model::names_or_none(info.capabilities.iter().map(|c| c.as_str()))
                    ))
                    .hint("remove it, or check that the grant is meant for this plugin"),
            );
        }
    }
    for (var, span) in &g.env {
        if !hsm_runtime::env_rules::is_env_name(var) {
            diags.push(
                Diagnostic::new(format!("`{var}` is not a variable name"))
                    .at(*span, "")
                    .hint("a name is an ASCII letter or `_`, then letters, digits and `_`"),
            );
        } else if let Some(why) = hsm_runtime::env_rules::refused_name(var) {
            diags.push(Diagnostic::new(why).at(*span, "").note("this holds for every plugin, granted or not"));
        } else if info.variables.is_some() && !info.declares_variable(var) {
            warnings.push(
                Diagnostic::warning(format!(
                    "plugin `{name}` declares the variables it sets, and `{var}` is not one of them: this grant gives it nothing"
                ))
                .at(*span, "")
                .note(format!(
                    "it declares {}",
                    hsm_model::names_or_none(info.variables.iter().flatten().map(|v| v.name.as_str()))
                ))
                .hint("remove it (a plugin built for WIT 0.3.0 or later needs no `env` grant)"),
            );
        }
    }
    diags.into_result(Grants {
        capabilities: g.capabilities.iter().map(|(c, _)| *c).collect(),
        host_ips: g.publish_on.iter().map(|(h, _)| h.clone()).collect(),
        variables: g.env.iter().map(|(v, _)| v.clone()).collect(),
        reviewed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(catalog: &Catalog) -> Vec<&str> {
        catalog.plugins().iter().map(|p| p.plugin.name()).collect()
    }

    /// The bundled plugins count for their kinds before they load, and load only
    /// when a kind they serve is asked for, once each.
    #[test]
    fn bundled_plugins_load_when_their_kinds_are_asked_for() {
        let host = PluginHost::default();
        let mut catalog = Catalog::with_bundled_unloaded();
        let all: BTreeSet<String> = ["chunker", "postgres", "qdrant", "uv-package"].map(String::from).into();
        assert_eq!(catalog.kinds(), all);
        assert!(catalog.plugins().is_empty());

        catalog.load_bundled(&host, None, &|kind| kind == "qdrant").unwrap();
        assert_eq!(names(&catalog), ["qdrant"]);
        assert!(catalog.for_kind("postgres").is_none());
        assert_eq!(catalog.for_kind("qdrant").map(|p| p.plugin.name()), Some("qdrant"));
        assert_eq!(catalog.kinds(), all);

        // Nothing wanted, nothing loaded; then the rest, in the order hsm bundles them.
        catalog.load_bundled(&host, None, &|_| false).unwrap();
        assert_eq!(names(&catalog), ["qdrant"]);
        catalog.load_bundled(&host, None, &|_| true).unwrap();
        assert_eq!(names(&catalog), ["postgres", "qdrant", "chunker", "uv-package"]);
        assert_eq!(catalog.kinds(), all);
        assert_eq!(Catalog::bundled(&host).map(|c| names(&c).join(" ")).unwrap(), "postgres qdrant chunker uv-package");
    }
}
