//! The plugins a project can use, by the kinds they serve, each with what it was
//! granted. Bundled plugins get what they declare; a kind served twice is refused.

use std::collections::BTreeSet;

use hsm_runtime::{Grants, LoadError, Plugin, PluginHost};

/// A plugin and what it may do.
#[derive(Debug)]
pub struct LoadedPlugin {
    /// The plugin.
    pub plugin: Plugin,
    /// Its grants.
    pub grants: Grants,
}

/// The loaded plugins.
#[derive(Debug, Default)]
pub struct Catalog {
    plugins: Vec<LoadedPlugin>,
}

impl Catalog {
    /// The plugins compiled into hsm, each granted what it declares.
    pub fn bundled(host: &PluginHost) -> Result<Self, LoadError> {
        let mut catalog = Self::default();
        for plugin in host.load_bundled()? {
            let grants = Grants::declared(plugin.info());
            catalog.add(plugin, grants).expect("bundled plugins serve distinct kinds");
        }
        Ok(catalog)
    }

    /// Adds a plugin, unless one already serves one of its kinds (then returns the
    /// kind and the plugin that serves it).
    pub fn add(&mut self, plugin: Plugin, grants: Grants) -> Result<(), (String, String)> {
        for kind in &plugin.info().kinds {
            if let Some(existing) = self.for_kind(kind) {
                return Err((kind.clone(), existing.plugin.name().to_string()));
            }
        }
        self.plugins.push(LoadedPlugin { plugin, grants });
        Ok(())
    }

    /// The plugin serving a kind.
    pub fn for_kind(&self, kind: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.plugin.info().kinds.iter().any(|k| k == kind))
    }

    /// Every kind served.
    pub fn kinds(&self) -> BTreeSet<String> {
        self.plugins.iter().flat_map(|p| p.plugin.info().kinds.iter().cloned()).collect()
    }

    /// The plugins, in the order loaded.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }
}
