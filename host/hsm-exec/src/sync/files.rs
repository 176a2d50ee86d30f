//! Files under `.hsm/`: what the plan's plugins write there, the bind sources
//! their containers mount from there, and the hashes that make a container
//! follow the files it mounts. Always through the plugin's folder as a
//! capability, so nothing climbs out of it.

use hsm_plan::{Action, Container, ServicePlan};

use super::Syncer;
use crate::error::ExecError;
use crate::report::{Change, ChangeKind};
use crate::spec;

/// Hashes of the files the service's plugin writes, for the config hash of
/// containers that bind-mount them.
pub(super) fn file_hashes(svc: &ServicePlan) -> Vec<String> {
    svc.actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteFile(f) => Some(format!("{}:{}", f.path, spec::sha256_bytes(f.contents.as_bytes()))),
            _ => None,
        })
        .collect()
}

impl Syncer<'_> {
    /// Checks a container's bind sources through the plugin's folder as a
    /// capability: a source that climbs out (`..`, a symlink) fails here, before
    /// Docker sees it. (Binds are read-only, so the container can't plant one.)
    pub(super) fn check_binds(&self, plugin: &str, c: &Container) -> Result<(), ExecError> {
        for m in &c.mounts {
            if let hsm_plan::Mount::Bind { source, .. } = m {
                let shown = format!(".hsm/{plugin}/{source}");
                let file_err = |e: std::io::Error| ExecError::File { path: shown.clone(), message: e.to_string() };
                crate::plugin_files::PluginDir::open(&self.cx.project, plugin)
                    .and_then(|files| files.bind_source(source))
                    .map_err(file_err)?;
            }
        }
        Ok(())
    }

    /// Writes a file of the plan under `.hsm/{plugin}/`; a change is reported only
    /// when its contents changed.
    pub(super) fn write_file(&self, svc: &ServicePlan, f: &hsm_plan::WriteFile) -> Result<(), ExecError> {
        let shown = format!(".hsm/{}/{}", f.plugin, f.path);
        let file_err = |e: std::io::Error| ExecError::File { path: shown.clone(), message: e.to_string() };
        // Through the plugin's folder as a capability: a path that climbs out (`..`,
        // absolute, a symlink on the way) fails.
        let files = crate::plugin_files::PluginDir::open(&self.cx.project, &f.plugin).map_err(file_err)?;
        if !files.write(&f.path, f.contents.as_bytes()).map_err(file_err)? {
            return Ok(());
        }
        self.report(Change {
            service: Some(svc.name.clone()),
            action: ChangeKind::WroteFile,
            subject: format!(".hsm/{}/{}", f.plugin, f.path),
            reason: None,
        });
        Ok(())
    }
}
