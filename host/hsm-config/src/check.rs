//! What one parsed file says, checked and converted into the definitions of
//! [`crate::config`]: sources, implications, plugins and parameter trees whose
//! strings are parsed templates, each with where it was written. The loader reads
//! the files and merges what this gives.

use std::path::Path;

use hsm_model::{Diagnostic, FileId, Span};
use indexmap::IndexMap;

use crate::config::{
    Implies, NameRef, PackageDef, ParamNode, Params, PluginDef, ProfileDef, ProfileSettings, ServiceDef, SourceDef,
    StrParam, TaskDef,
};
use crate::file::{PackageDecl, ParamMap, RawValue, RegistryFile, TaskOn, Version};
use crate::interp::Template;
use crate::load::normalize;
use crate::spanned::Spanned;

/// Checks and converts what one file says, collecting the problems found in it.
pub(crate) struct FileCtx<'t> {
    file: FileId,
    text: &'t str,
    /// The folder relative paths in the file start from (`None`: the bundled registry).
    base: Option<&'t Path>,
    /// The problems found so far.
    pub(crate) diags: Vec<Diagnostic>,
    /// Set when what the file says can't be used as written (a version hsm does not
    /// read).
    pub(crate) incomplete: bool,
}

/// What a registry file defines.
pub(crate) type Defs = (Vec<PackageDef>, Vec<ServiceDef>, Vec<ProfileDef>, Vec<PluginDef>);

impl<'t> FileCtx<'t> {
    pub(crate) fn new(file: FileId, text: &'t str, base: Option<&'t Path>) -> Self {
        Self { file, text, base, diags: Vec::new(), incomplete: false }
    }

    pub(crate) fn check_version(&mut self, version: Option<&Spanned<Version>>, project: bool) {
        let Some(v) = version else { return };
        if v.value.number == Some(1) {
            return;
        }
        self.incomplete = true;
        let what = if project { "`hsm.yaml`" } else { "this registry file" };
        self.diags.push(
            Diagnostic::new(format!("unsupported version `{}`", v.value.written))
                .at(v.span(self.file), "this version of hsm reads version 1")
                .hint(format!("write `version: 1`; if {what} was written for a newer hsm, update hsm")),
        );
    }

    pub(crate) fn registry_file(&mut self, reg: RegistryFile, display: &str) -> Defs {
        let file = self.file;
        self.check_version(reg.version.as_ref(), false);
        let mut packages = Vec::with_capacity(reg.packages.len());
        for (name, decl) in reg.packages {
            let name_ref = NameRef { name: name.value.to_string(), span: name.span(file) };
            if let Some(n) = &decl.value.name {
                self.diags.push(
                    Diagnostic::new("`name` is not a field of a registry package")
                        .at(n.span(file), "")
                        .hint(format!("the package's name is its key, `{}`", name.value)),
                );
            }
            packages.push(self.package(name_ref, decl.value));
        }
        let mut services = Vec::with_capacity(reg.services.len());
        for (name, decl) in reg.services {
            let span = decl.span(file);
            let decl = decl.value;
            services.push(ServiceDef {
                name: NameRef { name: name.value.into(), span: name.loc.span(file) },
                kind: NameRef { name: decl.kind.value.into(), span: decl.kind.loc.span(file) },
                description: decl.description,
                params: self.params(decl.params, Some(span)),
                profile: decl.profile.map(|p| NameRef { name: p.value.into(), span: p.loc.span(file) }),
            });
        }
        let mut profiles = Vec::with_capacity(reg.profiles.len());
        for (name, decl) in reg.profiles {
            let decl = decl.value;
            let mut services = IndexMap::new();
            for (svc, settings) in decl.services {
                let svc_ref = NameRef { name: svc.value.into(), span: svc.loc.span(file) };
                let span = settings.span(file);
                let params = self.params(settings.value, Some(span));
                services.insert(svc_ref.name.clone(), ProfileSettings { name: svc_ref, params });
            }
            profiles.push(ProfileDef {
                name: NameRef { name: name.value.into(), span: name.loc.span(file) },
                mode: decl.mode.value,
                description: decl.description,
                services,
            });
        }
        let mut plugins = Vec::with_capacity(reg.plugins.len());
        for (name, decl) in reg.plugins {
            let name = NameRef { name: name.value.to_string(), span: name.span(file) };
            if self.base.is_none() {
                self.diags.push(
                    Diagnostic::new("the bundled registry cannot ship plugins")
                        .at(name.span, "")
                        .note("bundled plugins are compiled into hsm"),
                );
                continue;
            }
            if self.sha256(&decl.value.sha256).is_some()
                && let Some(def) = self.plugin(name, &decl.value.path, &decl.value.sha256, display)
            {
                plugins.push(def);
            }
        }
        (packages, services, profiles, plugins)
    }

    /// A pinned digest: 64 hex digits.
    pub(crate) fn sha256(&mut self, written: &Spanned<String>) -> Option<String> {
        let s = written.value.trim();
        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(s.to_ascii_lowercase());
        }
        self.diags.push(
            Diagnostic::new(format!("`{}` is not a sha256 digest", written.value))
                .at(written.span(self.file), "expected 64 hexadecimal digits")
                .hint("`hsm plugin check FILE` prints a component's sha256"),
        );
        None
    }

    /// A plugin's declaration, its path joined to this file's folder.
    pub(crate) fn plugin(
        &mut self,
        name: NameRef,
        path: &Spanned<String>,
        sha256: &Spanned<String>,
        declared_in: &str,
    ) -> Option<PluginDef> {
        let file = self.file;
        if path.value.trim().is_empty() {
            self.diags.push(
                Diagnostic::new(format!("plugin `{}` has an empty `path`", name.name))
                    .at(path.span(file), "")
                    .hint("write the component's file, relative to this file"),
            );
            return None;
        }
        let base = self.base.unwrap_or(Path::new("."));
        Some(PluginDef {
            name,
            path: normalize(&base.join(&path.value)),
            written: path.value.clone(),
            path_span: path.span(file),
            sha256: sha256.value.trim().to_ascii_lowercase(),
            sha256_span: sha256.span(file),
            declared_in: declared_in.to_string(),
        })
    }

    pub(crate) fn package(&mut self, name: NameRef, decl: PackageDecl) -> PackageDef {
        let file = self.file;
        let mut sources: Vec<(&str, Spanned<String>)> = Vec::new();
        for (field, value) in [("pypi", decl.pypi), ("path", decl.path), ("editable", decl.editable)] {
            if let Some(v) = value {
                sources.push((field, v));
            }
        }
        if sources.len() > 1 {
            let (first_field, first) = &sources[0];
            let (second_field, second) = &sources[1];
            self.diags.push(
                Diagnostic::new(format!("package `{}` has more than one source", name.name))
                    .at(second.span(file), format!("`{second_field}` here"))
                    .also(first.span(file), format!("`{first_field}` here"))
                    .hint("keep one of `pypi`, `path` and `editable`"),
            );
        }
        let source = sources.into_iter().next().and_then(|(field, v)| {
            let span = v.span(file);
            if v.value.trim().is_empty() {
                self.diags.push(Diagnostic::new(format!("empty `{field}`")).at(span, "").hint(match field {
                    "pypi" => "write a requirement, such as `auth-service>=1.2`",
                    _ => "write a folder, relative to this file",
                }));
                return None;
            }
            if field == "pypi" {
                let requirement = v.value.trim().to_string();
                return Some(SourceDef::Pypi { requirement, span });
            }
            let Some(base) = self.base else {
                self.diags.push(
                    Diagnostic::new("the bundled registry cannot use local paths")
                        .at(span, "")
                        .note("this is a bug in hsm"),
                );
                return None;
            };
            let path = normalize(&base.join(&v.value));
            Some(SourceDef::Path { path, written: v.value, editable: field == "editable", span })
        });
        let mut implies = Vec::with_capacity(decl.implies.len());
        for imp in decl.implies {
            let span = imp.span(file);
            let imp = imp.value;
            match (imp.service, imp.package) {
                (Some(s), None) => {
                    let params = match imp.params {
                        Some(p) => {
                            let pspan = p.span(file);
                            self.params(p.value, Some(pspan))
                        }
                        None => Params::default(),
                    };
                    implies.push(Implies::Service {
                        name: NameRef { name: s.value.into(), span: s.loc.span(file) },
                        params,
                        span,
                    });
                }
                (None, Some(p)) => {
                    if let Some(params) = &imp.params {
                        self.diags.push(
                            Diagnostic::new("`params` apply to services, not packages")
                                .at(params.span(file), "")
                                .also(p.span(file), "this implies a package")
                                .hint("remove `params`, or imply a `service` instead"),
                        );
                    }
                    let pspan = p.loc.span(file);
                    implies.push(Implies::Package { name: NameRef { name: p.value.into(), span: pspan }, span });
                }
                (Some(s), Some(p)) => self.diags.push(
                    Diagnostic::new("an implication names a `service` or a `package`, not both")
                        .at(p.span(file), "")
                        .also(s.span(file), "")
                        .hint("split it into two entries: `- service: NAME` and `- package: NAME`"),
                ),
                (None, None) => self.diags.push(
                    Diagnostic::new("an implication needs `service` or `package`")
                        .at(span, "")
                        .hint("write `- service: postgres` (with optional `params`) or `- package: NAME`"),
                ),
            }
        }
        let mut tasks = Vec::with_capacity(decl.tasks.len());
        for (task, body) in decl.tasks {
            let body = body.value;
            let task_ref = NameRef { name: task.value.to_string(), span: task.span(file) };
            if body.run.value.first().is_none_or(|p| p.trim().is_empty()) {
                self.diags.push(
                    Diagnostic::new(format!("task `{}` of package `{}` has no command", task_ref.name, name.name))
                        .at(body.run.span(file), "")
                        .hint("write the program and its arguments, such as `run: [alembic, upgrade, head]`"),
                );
                continue;
            }
            if let Some(bad) = body.run.value.iter().find(|a| a.chars().any(|c| c.is_control())) {
                self.diags.push(
                    Diagnostic::new(format!(
                        "task `{}` of package `{}`: `{}` holds a control character",
                        task_ref.name,
                        name.name,
                        bad.escape_debug()
                    ))
                    .at(body.run.span(file), "")
                    .hint("write each argument on one line, without control characters"),
                );
                continue;
            }
            let on_demand = body.on.is_some_and(|o| o.value == TaskOn::Demand);
            tasks.push(TaskDef { name: task_ref, run: body.run.value, on_demand });
        }
        PackageDef { name, description: decl.description, source, implies, tasks }
    }

    pub(crate) fn params(&mut self, map: ParamMap, span: Option<Span>) -> Params {
        if map.is_empty() {
            return Params { root: ParamNode::Null, span, keys: Vec::new() };
        }
        let keys = map.keys().map(|k| (k.value.clone(), k.span(self.file))).collect();
        let root = ParamNode::Map(map.into_iter().map(|(k, v)| (k.value, self.node(v))).collect());
        Params { root, span, keys }
    }

    fn node(&mut self, v: Spanned<RawValue>) -> ParamNode {
        let loc = v.loc;
        match v.value {
            RawValue::Null => ParamNode::Null,
            RawValue::Bool(b) => ParamNode::Bool(b),
            RawValue::Int(i) => ParamNode::Int(i),
            RawValue::Float(f) => ParamNode::Float(f),
            RawValue::List(items) => ParamNode::List(items.into_iter().map(|i| self.node(i)).collect()),
            RawValue::Map(m) => ParamNode::Map(m.into_iter().map(|(k, v)| (k.value, self.node(v))).collect()),
            RawValue::Str(s) => {
                let span = loc.span(self.file);
                let exact_start = exact_start(self.text, loc.start, loc.len, &s);
                match Template::parse(&s) {
                    Ok(template) => ParamNode::Str(StrParam { template, span, exact_start }),
                    Err(e) => {
                        let at = match exact_start {
                            Some(start) => Span::from_range(self.file, self.text, start + e.start, e.len),
                            None => span,
                        };
                        self.diags.push(Diagnostic::new(e.message).at(at, "").hint(e.hint));
                        ParamNode::Null
                    }
                }
            }
        }
    }
}

/// Where a scalar's text starts in the file, when its bytes are the string's bytes.
fn exact_start(text: &str, start: usize, len: usize, value: &str) -> Option<usize> {
    let slice = text.get(start..start + len)?;
    if slice == value {
        return Some(start);
    }
    let inner = slice.strip_prefix(['"', '\''])?;
    let inner = &inner[..inner.len().checked_sub(1)?];
    (inner == value).then_some(start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_start_maps_plain_and_quoted_scalars() {
        let text = "a: ${X}\nb: \"${Y}\"\nc: \"a\\tb\"\n";
        assert_eq!(exact_start(text, 3, 4, "${X}"), Some(3));
        assert_eq!(exact_start(text, 11, 6, "${Y}"), Some(12));
        assert_eq!(exact_start(text, 21, 6, "a\tb"), None);
    }
}
