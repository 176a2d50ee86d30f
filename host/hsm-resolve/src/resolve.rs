//! The resolution itself: a walk over package implications (depth first, so the
//! order is the project's list with each package followed by what it implies), then
//! one pass per service to choose its profile and interpolate what it uses.

use std::collections::{BTreeSet, HashMap, HashSet};

use rustc_hash::FxHashMap;

use hsm_config::load::display_path;
use hsm_config::{Config, Implies, Mode, NameRef, PackageDef, Params, ServiceDef, SourceDef, did_you_mean};
use hsm_model::{Diagnostic, Diagnostics, Origin, SecretStore, Sources, Span, Value};

use crate::{
    ChosenProfile, Contribution, PackageSource, ProjectInfo, Requester, Resolution, ResolvedPackage, ServiceInstance,
    Task,
};

/// What [`resolve`] needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct ResolveOptions {
    /// The service kinds that have a plugin.
    pub known_kinds: BTreeSet<String>,
}

/// Resolves a loaded configuration, reporting every independent problem at once.
pub fn resolve(config: &Config, sources: &Sources, options: &ResolveOptions) -> Result<Resolution, Diagnostics> {
    let mut r = Resolver { config, sources, diags: Diagnostics::default(), secrets: SecretStore::new() };
    let resolution = r.run(options);
    r.diags.into_result(resolution)
}

struct Resolver<'a> {
    config: &'a Config,
    sources: &'a Sources,
    diags: Diagnostics,
    secrets: SecretStore,
}

/// What the walk found: the packages in first-seen order with their definitions,
/// and who asked for each.
type Walked<'a, 'e> = (Vec<(&'a str, &'e PackageDef)>, FxHashMap<&'a str, Vec<Requester>>);

/// What a service instance is made of before interpolation.
struct Wanted<'a> {
    contributions: Vec<(Requester, &'a Params, Span)>,
    consumers: Vec<String>,
    /// Where the service is first named, for errors about the service itself.
    first: Span,
}

impl<'a> Resolver<'a> {
    fn run(&mut self, options: &ResolveOptions) -> Resolution {
        let project = &self.config.project;
        if let Some(p) = &project.profile {
            self.check_profile(p);
        }

        // The project's own entries: registry packages, overridden or defined inline.
        let mut effective: HashMap<&'a str, PackageDef> = HashMap::new();
        let mut roots = Vec::new();
        for req in &project.packages {
            let name = req.name.name.as_str();
            let def = match (self.config.packages.get(name), &req.inline) {
                // Used as the registry defines it: looked up there, not copied.
                (Some(_), None) => {
                    roots.push(name);
                    continue;
                }
                (Some(reg), Some(inline)) => {
                    let mut def = reg.clone();
                    if inline.source.is_some() {
                        def.source = inline.source.clone();
                    }
                    def.implies.extend(inline.implies.iter().cloned());
                    // hsm.yaml's tasks add to the registry's, or replace those of the same name
                    // where they are (the order is the order they run in).
                    for task in &inline.tasks {
                        match def.tasks.iter_mut().find(|t| t.name.name == task.name.name) {
                            Some(t) => *t = task.clone(),
                            None => def.tasks.push(task.clone()),
                        }
                    }
                    def
                }
                (None, Some(inline)) if inline.source.is_some() || !inline.implies.is_empty() || req.source_given => {
                    inline.clone()
                }
                (None, inline) => {
                    let mut d = self.unknown("package", &req.name, self.config.packages.keys());
                    if inline.is_some() {
                        d = d.hint("to define the package here, give it a source: `pypi`, `path` or `editable`");
                    }
                    self.diags.push(d);
                    continue;
                }
            };
            effective.insert(name, def);
            roots.push(name);
        }

        let (order, mut requested_by) = self.walk(&roots, &effective);

        // Packages, with their sources checked.
        let mut packages = Vec::with_capacity(order.len());
        for &(name, def) in &order {
            let source = def.source.as_ref().and_then(|s| self.source(name, s));
            let implies = def
                .implies
                .iter()
                .filter_map(|i| match i {
                    Implies::Package { name, .. } => Some(name.name.clone()),
                    Implies::Service { .. } => None,
                })
                .collect();
            let tasks = def
                .tasks
                .iter()
                .map(|t| Task {
                    name: t.name.name.clone(),
                    run: t.run.clone(),
                    on_demand: t.on_demand,
                    origin: self.origin(t.name.span),
                })
                .collect();
            packages.push(ResolvedPackage {
                name: name.to_string(),
                source,
                requested_by: requested_by.remove(name).unwrap_or_default(),
                origin: self.origin(def.name.span),
                implies,
                tasks,
            });
        }

        // Services: what packages ask of them, then what the project asks; sorted
        // by name below.
        let mut wanted: Vec<(&str, Wanted<'_>)> = Vec::new();
        let mut index: FxHashMap<&str, usize> = FxHashMap::default();
        let mut want = |name, first: Span| -> usize {
            *index.entry(name).or_insert_with(|| {
                wanted.push((name, Wanted { contributions: Vec::new(), consumers: Vec::new(), first }));
                wanted.len() - 1
            })
        };
        let mut asks = Vec::new();
        for &(name, def) in &order {
            for imp in &def.implies {
                if let Implies::Service { name: svc, params, span } = imp {
                    asks.push((want(svc.name.as_str(), svc.span), Requester::Package(name.to_string()), params, *span));
                }
            }
        }
        for req in &project.services {
            asks.push((want(req.name.name.as_str(), req.name.span), Requester::Project, &req.params, req.name.span));
        }
        for (i, from, params, span) in asks {
            let w = &mut wanted[i].1;
            // A package's implications are visited together, so it asked before
            // only if it was the last to ask.
            if let Requester::Package(p) = &from
                && w.consumers.last() != Some(p)
            {
                w.consumers.push(p.clone());
            }
            w.contributions.push((from, params, span));
        }
        wanted.sort_unstable_by(|a, b| a.0.cmp(b.0));

        let mut services = Vec::new();
        let mut reported_unknown = HashSet::new();
        for (name, w) in wanted {
            let Some(def) = self.config.services.get(name) else {
                // Report each place that names the unknown service.
                for (from, _, span) in &w.contributions {
                    let at = match from {
                        Requester::Project => *span,
                        Requester::Package(_) => self.implied_name_span(&effective, from, name).unwrap_or(*span),
                    };
                    if reported_unknown.insert(at) {
                        let named = NameRef { name: name.to_string(), span: at };
                        let d = self.unknown("service", &named, self.config.services.keys());
                        self.diags.push(d);
                    }
                }
                continue;
            };
            if let Some(instance) = self.service(name, def, &w, options) {
                services.push(ServiceInstance { consumers: w.consumers, ..instance });
            }
        }

        Resolution {
            project: ProjectInfo {
                name: project.name.name.clone(),
                dir: project.dir.clone(),
                file: project.display.clone(),
            },
            packages,
            services,
            secrets: std::mem::take(&mut self.secrets),
        }
    }

    /// One service wanted by the project, its profile chosen and what it uses
    /// interpolated; `None` (with diagnostics) if it can't be planned. Problems go
    /// to `self.diags`, secrets to `self.secrets`.
    fn service(
        &mut self,
        name: &str,
        def: &ServiceDef,
        w: &Wanted<'_>,
        options: &ResolveOptions,
    ) -> Option<ServiceInstance> {
        if !options.known_kinds.contains(&def.kind.name) {
            let known: Vec<String> = options.known_kinds.iter().map(|k| format!("`{k}`")).collect();
            let mut d = Diagnostic::new(format!("no plugin handles service kind `{}`", def.kind.name))
                .at(def.kind.span, format!("kind of service `{name}`"))
                .also(w.first, "the service is needed here")
                .note(format!("this hsm has plugins for {}", known.join(", ")));
            if let Some(best) = did_you_mean(&def.kind.name, options.known_kinds.iter().map(String::as_str)) {
                d = d.hint(format!("did you mean `{best}`?"));
            }
            self.diags.push(d);
            return None;
        }
        // Without a profile the service is not planned, but its params are still
        // interpolated: their problems are independent and belong in this run.
        let profile = self.choose_profile(name, def);
        let defaults = self.interpolate(&def.params, || format!("service `{name}` is used by this project"));
        let contributions = w
            .contributions
            .iter()
            .map(|(from, params, span)| {
                let who = |from: &Requester| match from {
                    Requester::Project => "hsm.yaml asks for it".to_string(),
                    Requester::Package(p) => format!("package `{p}` is used by this project"),
                };
                Contribution {
                    from: from.clone(),
                    params: self.interpolate(params, || format!("{} (service `{name}`)", who(from))),
                    origin: self.origin(*span),
                }
            })
            .collect();
        profile.map(|profile| ServiceInstance {
            name: name.to_string(),
            kind: def.kind.name.clone(),
            defaults,
            profile,
            contributions,
            // Moved in by the caller, who owns them.
            consumers: Vec::new(),
        })
    }

    /// Depth-first walk over package implications from the project's packages:
    /// the packages in first-seen order and who asked for each. Reports unknown
    /// packages and cycles.
    fn walk<'e>(&mut self, roots: &[&'a str], effective: &'e HashMap<&'a str, PackageDef>) -> Walked<'a, 'e>
    where
        'a: 'e,
    {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            OnStack,
            Done,
        }
        let mut order: Vec<(&'a str, &'e PackageDef)> = Vec::new();
        let mut state: FxHashMap<&'a str, State> = FxHashMap::default();
        let mut requested_by: FxHashMap<&'a str, Vec<Requester>> = FxHashMap::default();
        let mut reported_cycles: HashSet<Vec<&'a str>> = HashSet::new();
        let mut reported_unknown: HashSet<Span> = HashSet::new();
        let config = self.config;
        let def_of = |name: &str| -> &'e PackageDef { effective.get(name).unwrap_or_else(|| &config.packages[name]) };

        for root in roots {
            requested_by.entry(root).or_default().push(Requester::Project);
        }
        for &root in roots {
            if state.contains_key(root) {
                continue;
            }
            // Frames: package, its definition, index of the next implication, span of
            // the edge that led here.
            let root_def = def_of(root);
            let mut stack: Vec<(&'a str, &'e PackageDef, usize, Option<Span>)> = vec![(root, root_def, 0, None)];
            state.insert(root, State::OnStack);
            order.push((root, root_def));
            while let Some(top) = stack.last_mut() {
                let (name, def, idx) = (top.0, top.1, top.2);
                let Some(imp) = def.implies.get(idx) else {
                    state.insert(name, State::Done);
                    stack.pop();
                    continue;
                };
                top.2 += 1;
                let Implies::Package { name: child, .. } = imp else { continue };
                let span = &child.span;
                // The project's own entry for a package wins over the registry's.
                let found = match effective.get_key_value(child.name.as_str()) {
                    Some((k, d)) => Some((*k, d)),
                    None => self.config.packages.get_key_value(child.name.as_str()).map(|(k, d)| (k.as_str(), d)),
                };
                let (child_name, child_def): (&'a str, &'e PackageDef) = match found {
                    Some(found) => found,
                    None => {
                        if reported_unknown.insert(child.span) {
                            let d = self
                                .unknown("package", child, self.config.packages.keys())
                                .note(format!("implied by package `{name}`"));
                            self.diags.push(d);
                        }
                        continue;
                    }
                };
                let list = requested_by.entry(child_name).or_default();
                if !list.iter().any(|r| matches!(r, Requester::Package(p) if p == name)) {
                    list.push(Requester::Package(name.to_string()));
                }
                match state.get(child_name) {
                    None => {
                        state.insert(child_name, State::OnStack);
                        order.push((child_name, child_def));
                        stack.push((child_name, child_def, 0, Some(*span)));
                    }
                    Some(State::Done) => {}
                    Some(State::OnStack) => {
                        let from = stack.iter().position(|f| f.0 == child_name).expect("on the stack");
                        let cycle: Vec<&'a str> = stack[from..].iter().map(|f| f.0).collect();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if reported_cycles.insert(key) {
                            let path: Vec<&str> = cycle.iter().copied().chain([child_name]).collect();
                            let mut d = Diagnostic::new(format!("package cycle: {}", path.join(" → ")))
                                .at(*span, format!("`{name}` implies `{child_name}`, which leads back here"));
                            for frame in &stack[from + 1..] {
                                if let Some(s) = frame.3 {
                                    d = d.also(s, "");
                                }
                            }
                            d = d.hint("remove one of these implications: packages cannot imply themselves");
                            self.diags.push(d);
                        }
                    }
                }
            }
        }
        (order, requested_by)
    }

    /// Where a package's implication names `service`, for error messages.
    fn implied_name_span(
        &self,
        effective: &HashMap<&'a str, PackageDef>,
        from: &Requester,
        service: &str,
    ) -> Option<Span> {
        let Requester::Package(p) = from else { return None };
        let def = effective.get(p.as_str()).or_else(|| self.config.packages.get(p))?;
        def.implies.iter().find_map(|i| match i {
            Implies::Service { name, .. } if name.name == service => Some(name.span),
            _ => None,
        })
    }

    fn source(&mut self, package: &str, source: &SourceDef) -> Option<PackageSource> {
        match source {
            SourceDef::Pypi { requirement, .. } => Some(PackageSource::Pypi { requirement: requirement.clone() }),
            SourceDef::Path { path, written, editable, span } => {
                let display = match display_path(&self.config.project.dir, path) {
                    d if d.starts_with("..") || d.starts_with('/') => d,
                    d => format!("./{d}"),
                };
                let what = if *editable { "editable path" } else { "path" };
                let problem = match std::fs::metadata(path) {
                    Ok(m) if m.is_dir() => None,
                    Ok(_) => Some((
                        format!("{what} `{written}` of package `{package}` is not a folder"),
                        "point to the folder that holds the package's `pyproject.toml`",
                    )),
                    Err(_) => Some((
                        format!("{what} `{written}` of package `{package}` does not exist"),
                        "create the package there, or fix the path (it is relative to the file that names it)",
                    )),
                };
                if let Some((msg, hint)) = problem {
                    self.diags.push(Diagnostic::new(msg).at(*span, format!("resolves to `{display}`")).hint(hint));
                    return None;
                }
                Some(PackageSource::Path { path: path.clone(), display, editable: *editable })
            }
        }
    }

    /// The profile for a service: hsm.yaml's per-service choice, over hsm.yaml's
    /// default, over the registry's default for the service.
    fn choose_profile(&mut self, service: &str, def: &hsm_config::ServiceDef) -> Option<ChosenProfile> {
        let project = &self.config.project;
        let per_service = project.services.iter().find(|s| s.name.name == service).and_then(|s| s.profile.as_ref());
        let Some(choice) = per_service.or(project.profile.as_ref()).or(def.profile.as_ref()) else {
            self.diags.push(
                Diagnostic::new(format!("no profile chosen for service `{service}`"))
                    .at(def.name.span, "defined here without a default `profile`")
                    .hint(format!(
                        "set `profile: NAME` in hsm.yaml, or `services: {{ {service}: {{ profile: NAME }} }}`"
                    )),
            );
            return None;
        };
        if project.profile.as_ref() == Some(choice) && per_service.is_none() {
            // The default profile was checked once already.
            self.config.profiles.get(&choice.name)?;
        }
        let Some(profile) = self.config.profiles.get(&choice.name) else {
            if project.profile.as_ref() != Some(choice) {
                let d = self.unknown("profile", choice, self.config.profiles.keys());
                self.diags.push(d);
            }
            return None;
        };
        let written = profile.services.get(service).map(|s| &s.params.keys);
        let settings_at = written.into_iter().flatten().cloned().collect();
        let settings = match profile.services.get(service) {
            Some(s) => {
                self.interpolate(&s.params, || format!("service `{service}` uses profile `{}`", profile.name.name))
            }
            None if profile.mode == Mode::External => {
                self.diags.push(
                    Diagnostic::new(format!(
                        "external profile `{}` has no settings for service `{service}`",
                        profile.name.name
                    ))
                    .at(choice.span, format!("`{service}` uses this profile"))
                    .also(profile.name.span, "defined here")
                    .note("an external profile must say how to reach each service that uses it")
                    .hint(format!(
                        "add `{service}:` with its connection settings under the profile's `services`, or choose another profile for `{service}` in hsm.yaml"
                    )),
                );
                return None;
            }
            None => Value::map(),
        };
        Some(ChosenProfile {
            name: profile.name.name.clone(),
            mode: profile.mode,
            settings,
            chosen_by: self.origin(choice.span),
            settings_at,
        })
    }

    fn check_profile(&mut self, p: &NameRef) {
        if !self.config.profiles.contains_key(&p.name) {
            let d = self.unknown("profile", p, self.config.profiles.keys());
            self.diags.push(d);
        }
    }

    fn interpolate(&mut self, params: &Params, why: impl Fn() -> String) -> Value {
        match self.config.interpolate(params, self.sources, &mut self.secrets) {
            Ok(v) => v,
            Err(ds) => {
                for d in ds.0 {
                    self.diags.push(d.note(format!("needed because {}", why())));
                }
                Value::Null
            }
        }
    }

    fn unknown<'k>(&self, what: &str, name: &NameRef, known: impl Iterator<Item = &'k String>) -> Diagnostic {
        let known: Vec<&str> = known.map(String::as_str).collect();
        let mut d = Diagnostic::new(format!("unknown {what} `{}`", name.name)).at(name.span, "not in any registry");
        if let Some(best) = did_you_mean(&name.name, known.iter().copied()) {
            d = d.hint(format!("did you mean `{best}`?"));
        } else if !known.is_empty() && known.len() <= 12 {
            let mut sorted = known.clone();
            sorted.sort_unstable();
            d = d.note(format!(
                "known {what}s: {}",
                sorted.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        let regs = &self.config.registries;
        if !regs.is_empty() {
            d = d.note(format!(
                "registries read: {}",
                regs.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        d
    }

    fn origin(&self, span: Span) -> Origin {
        span.origin(self.sources)
    }
}
