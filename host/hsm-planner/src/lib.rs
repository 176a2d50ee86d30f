//! The planning stage of the pipeline: for each service of a resolved project, the
//! plugin serving its kind merges the contributions and plans the service for its
//! profile and consumers; the host then checks every returned action against the
//! plugin's capabilities and grants. The result is a [`Plan`]: pure data that
//! `hsm plan` prints and `hsm sync` executes.
//!
//! The project's Python packages are planned the same way, as one service
//! `python` of kind `uv-package` whose contributions are the packages.

mod ask;
mod catalog;
mod tasks;

use std::borrow::Cow;
use std::collections::BTreeSet;

use hsm_model::{Diagnostic, Diagnostics, Origin, Sources, Span, Value};
use hsm_plan::{Consumer, Mode, PackageSource, Plan, PythonPackage, ServicePlan};
use hsm_resolve::{Requester, Resolution, ServiceInstance};
use hsm_runtime::{CallError, CheckContext, Refusal, Rename, review_plan};
use indexmap::IndexMap;
use rayon::prelude::*;

use crate::ask::{Answer, ask_plugin};

pub use catalog::{Catalog, LoadedPlugin};
pub use hsm_plan::PYTHON_SERVICE;

/// The kind of the service that installs the project's Python packages.
pub const PYTHON_KIND: &str = "uv-package";
/// The profile that service is planned for: always managed, on this machine.
const PYTHON_PROFILE: &str = "local";
/// The address consumers on this machine reach published ports at.
pub const HOST_ADDRESS: &str = "127.0.0.1";

/// Why a project could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    /// The input is wrong: a conflict between packages, a bad parameter, a missing
    /// setting. The diagnostics point at the files.
    #[error("the project's configuration is invalid")]
    Input(Diagnostics),
    /// A plugin failed (crashed, looped, returned garbage).
    #[error(transparent)]
    Plugin(#[from] CallError),
    /// A plugin returned an action the host refuses.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Plugins plan what the project has not granted (or reviewed) yet: the plan,
    /// to show what they would do, and every grant or review missing.
    #[error("{} plugin action(s) need a grant or a review", .refusals.len())]
    NeedsReview {
        /// What the plugins would do.
        plan: Box<Plan>,
        /// What each lacks.
        refusals: Vec<Refusal>,
    },
}

/// Where the consumers of a managed service reach it: the address its plugin puts
/// in their environment (`DB_HOST`, the host of a URL).
#[derive(Clone, Copy, Debug)]
pub enum Reach {
    /// On this machine, at the published ports ([`HOST_ADDRESS`]): what `hsm sync`
    /// and `hsm run` give.
    Local,
    /// Inside an exported stack's network, at the service's name as the target
    /// spells it (`hsm export`).
    ByName(fn(&str) -> String),
}

impl Reach {
    fn address(self, service: &str) -> Cow<'static, str> {
        match self {
            Self::Local => Cow::Borrowed(HOST_ADDRESS),
            Self::ByName(name) => Cow::Owned(name(service)),
        }
    }
}

/// Which services a plan covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every service, and the service that installs the Python packages.
    All,
    /// Only the services this package uses: what its environment needs (`hsm run
    /// PKG`), and nothing else is asked of the plugins.
    UsedBy(&'a str),
}

impl Scope<'_> {
    fn covers(self, service: &ServiceInstance) -> bool {
        match self {
            Self::All => true,
            Self::UsedBy(package) => service.consumers.iter().any(|c| c == package),
        }
    }

    /// Whether the Python packages' service is planned (when there are packages).
    fn covers_python(self) -> bool {
        self == Self::All
    }
}

/// The kinds planning `resolution` within `scope` asks plugins about: its services'
/// kinds, and the Python packages' kind when it installs any. The bundled plugins
/// serving them must be loaded ([`Catalog::load_bundled`]) before it is planned.
pub fn kinds_used<'r>(resolution: &'r Resolution, scope: Scope<'_>) -> BTreeSet<&'r str> {
    let services = resolution.services.iter().filter(|s| scope.covers(s));
    let mut kinds: BTreeSet<&str> = services.map(|s| s.kind.as_str()).collect();
    if scope.covers_python() && resolution.packages.iter().any(|p| p.source.is_some()) {
        kinds.insert(PYTHON_KIND);
    }
    kinds
}

/// Plans every service of a resolved project for this machine. Independent problems
/// in several services are reported together. The bundled plugins of the kinds it
/// uses must have been loaded ([`kinds_used`], [`Catalog::load_bundled`]).
pub fn plan(resolution: &Resolution, catalog: &Catalog, sources: &Sources) -> Result<Plan, PlanningError> {
    plan_for(resolution, catalog, sources, Reach::Local)
}

/// Plans every service of a resolved project, its consumers reaching it as `reach`
/// says.
pub fn plan_for(
    resolution: &Resolution,
    catalog: &Catalog,
    sources: &Sources,
    reach: Reach,
) -> Result<Plan, PlanningError> {
    plan_scoped(resolution, catalog, sources, reach, Scope::All)
}

/// Plans the services of a resolved project that `scope` covers, their consumers
/// reaching them as `reach` says. The bundled plugins of the kinds this asks about
/// must have been loaded ([`kinds_used`], [`Catalog::load_bundled`]).
pub fn plan_scoped(
    resolution: &Resolution,
    catalog: &Catalog,
    sources: &Sources,
    reach: Reach,
    scope: Scope<'_>,
) -> Result<Plan, PlanningError> {
    let packages = python_packages(resolution);
    let mut services = Vec::new();
    let mut diags = Diagnostics::default();
    let mut jobs: Vec<Job<'_>> = resolution.services.iter().filter(|s| scope.covers(s)).map(Job::Service).collect();
    if scope.covers_python() && !packages.is_empty() {
        jobs.push(Job::Python);
    }
    let results =
        plan_in_parallel(&jobs, &packages, |job| plan_service(resolution, job, catalog, sources, &packages, reach));
    let mut pending = Vec::new();
    for result in results {
        match result {
            Ok((s, needs)) => {
                services.push(s);
                pending.extend(needs);
            }
            Err(PlanningError::Input(d)) => diags.0.extend(d.0),
            Err(e) => return Err(e),
        }
    }
    if !diags.is_empty() {
        return Err(PlanningError::Input(diags));
    }
    let tasks = tasks::tasks(resolution, &services);
    let plan = Plan { project: resolution.project.name.clone(), services, tasks };
    check_across_services(&plan)?;
    if !pending.is_empty() {
        return Err(PlanningError::NeedsReview { plan: Box::new(plan), refusals: pending });
    }
    Ok(plan)
}

/// How many services make planning them on several threads worth their start.
const PARALLEL_SERVICES: usize = 6;

/// Runs `plan` on every service, on every core when there are enough of them
/// (rayon), and returns the results in the services' order. Each plugin call has
/// an instance of its own, so services are independent. They are split service by
/// service, biggest first (the Python packages' service can be as much work as
/// hundreds of others, and the first thread starts with it), and a thread that is
/// done takes work from the others. Plugin calls are most of a plan's work: on a project of 200 packages and
/// 20 services, two cores take a tenth to a fifth off `hsm plan` (17-18 ms against
/// 19-21 ms). A few services plan in less time than threads take to start (tens
/// of microseconds each, as a plugin call is): `hsm run` of a two-service project
/// waits for its plan.
fn plan_in_parallel<T: Send>(
    services: &[Job<'_>],
    packages: &[PythonPackage],
    plan: impl Fn(&Job<'_>) -> T + Sync,
) -> Vec<T> {
    if services.len() < PARALLEL_SERVICES {
        return services.iter().map(plan).collect();
    }
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(services[i].size(packages)));
    let mut done: Vec<(usize, T)> = order.par_iter().with_max_len(1).map(|&i| (i, plan(&services[i]))).collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// What no single plugin's plan shows: two services giving one consumer the same
/// variable (one would silently replace the other), and Python packages installed by
/// more than one service (each install is the whole set).
fn check_across_services(plan: &Plan) -> Result<(), PlanningError> {
    let mut diags = Diagnostics::default();
    // Each consumer's environments, in plan order, as (service, environment)
    // indices; names are then checked per consumer, in a small map reused for each.
    let mut by_consumer: rustc_hash::FxHashMap<&Consumer, Vec<(usize, usize)>> = rustc_hash::FxHashMap::default();
    for (s, service) in plan.services.iter().enumerate() {
        for (e, env) in service.env.iter().enumerate() {
            by_consumer.entry(&env.consumer).or_default().push((s, e));
        }
    }
    // Each variable given again, as (service, environment, variable), with the
    // service that gave it first; reported in plan order.
    let mut again: Vec<((usize, usize, usize), &str)> = Vec::new();
    let mut seen: rustc_hash::FxHashMap<&str, &str> = rustc_hash::FxHashMap::default();
    for envs in by_consumer.values() {
        seen.clear();
        for &(s, e) in envs {
            for (v, (name, _)) in plan.services[s].env[e].vars.iter().enumerate() {
                match seen.get(name.as_str()) {
                    Some(&first) => again.push(((s, e, v), first)),
                    None => {
                        seen.insert(name, &plan.services[s].name);
                    }
                }
            }
        }
    }
    again.sort_unstable_by_key(|(at, _)| *at);
    for ((s, e, v), first) in again {
        let service = &plan.services[s];
        let env = &service.env[e];
        let name = &env.vars[v].0;
        let who = match &env.consumer {
            Consumer::Project => "the project".to_string(),
            Consumer::Package(p) => format!("package `{p}`"),
        };
        let place = match &env.consumer {
            Consumer::Project => format!("in hsm.yaml, under `services.{}.params`", service.name),
            Consumer::Package(p) => format!(
                "in the params `{p}` gives service `{}` (its registry entry, or an `implies` added to it in hsm.yaml)",
                service.name
            ),
        };
        diags.push(
            Diagnostic::new(format!("services `{first}` and `{}` both give {who} `{name}`", service.name))
                .note("one would silently replace the other")
                .hint(format!("rename one with `env_names: {{ {name}: NEW_NAME }}` {place}")),
        );
    }
    let installers: Vec<&str> = plan
        .services
        .iter()
        .filter(|s| s.actions.iter().any(|a| matches!(a, hsm_plan::Action::UvInstall { .. })))
        .map(|s| s.name.as_str())
        .collect();
    if installers.len() > 1 {
        diags.push(
            Diagnostic::new(format!("more than one service installs Python packages: {}", installers.join(", ")))
                .note("the project's packages are installed once, by the `uv-package` plugin"),
        );
    }
    diags.into_result(()).map_err(PlanningError::Input)
}

/// A service to plan.
enum Job<'r> {
    /// One the resolution found.
    Service(&'r ServiceInstance),
    /// The project's Python packages: its instance, a contribution per package, is
    /// made by the thread that plans it (see [`python_service`]).
    Python,
}

impl Job<'_> {
    /// How much work it is, roughly.
    fn size(&self, packages: &[PythonPackage]) -> usize {
        match self {
            Self::Service(s) => s.contributions.len(),
            Self::Python => packages.len(),
        }
    }
}

fn plan_service(
    resolution: &Resolution,
    job: &Job<'_>,
    catalog: &Catalog,
    sources: &Sources,
    packages: &[PythonPackage],
    reach: Reach,
) -> Result<(ServicePlan, Vec<Refusal>), PlanningError> {
    let (name, kind) = match job {
        Job::Service(s) => (s.name.as_str(), s.kind.as_str()),
        Job::Python => (PYTHON_SERVICE, PYTHON_KIND),
    };
    let loaded = catalog.for_kind(kind).ok_or_else(|| {
        // Resolving checked the kinds; a bundled plugin may not have been loaded.
        let why =
            if catalog.kinds().contains(kind) { " (its bundled plugin was not loaded: a bug in hsm)" } else { "" };
        PlanningError::Input(Diagnostic::new(format!("no plugin serves kind `{kind}` of service `{name}`{why}")).into())
    })?;
    let plugin = &loaded.plugin;
    let Answer { merged, actions, env } = match job {
        Job::Service(service) => ask_plugin(resolution, service, loaded, sources, reach)?,
        Job::Python => ask_plugin(resolution, &python_service(resolution, packages), loaded, sources, Reach::Local)?,
    };
    let planned = hsm_runtime::PlannedService { actions, env };
    // The Python service has no consumers: no package implies it.
    let (who, renames) = match job {
        Job::Service(service) => (consumer_list(service), renames(service)),
        Job::Python => (Vec::new(), Vec::new()),
    };
    let ctx = CheckContext { service: name, consumers: &who, packages, renames: &renames };
    let needs = review_plan(plugin.info(), &loaded.grants, &ctx, &planned)?;
    let (profile, mode) = match job {
        Job::Service(service) => (service.profile.name.clone(), mode(service)),
        Job::Python => (PYTHON_PROFILE.to_string(), Mode::Managed),
    };
    let service = ServicePlan {
        name: name.to_string(),
        kind: kind.to_string(),
        plugin: format!("{}@{}", plugin.name(), plugin.info().version),
        profile,
        mode,
        merged,
        actions: planned.actions,
        env: planned.env,
    };
    Ok((service, needs))
}

fn mode(service: &ServiceInstance) -> Mode {
    match service.profile.mode {
        hsm_config::Mode::Managed => Mode::Managed,
        hsm_config::Mode::External => Mode::External,
    }
}

/// Who gets a service's environment: the packages that imply it, each with what it
/// asked; or, for a service no package implies, the project that lists it (listing
/// an implied service in hsm.yaml only configures it). A package that asks twice (a
/// registry's implication, then hsm.yaml's addition) gets both, the later overlaid on
/// the earlier, so a project can rename a package's variables. Params are copied
/// only to be overlaid.
fn consumers(service: &ServiceInstance) -> Vec<(Consumer, Cow<'_, Value>)> {
    let mut out: Vec<(Consumer, Cow<'_, Value>)> = Vec::new();
    for c in service.contributions.iter().filter(|c| gets_env(service, &c.from)) {
        match out.iter_mut().find(|(existing, _)| matches_requester(existing, &c.from)) {
            Some((_, params)) => params.to_mut().overlay(&c.params),
            None => out.push((consumer(&c.from), Cow::Borrowed(&c.params))),
        }
    }
    out
}

/// The consumers' renames of the service's variables: their `env_names` (the
/// parameter every plugin honours through the SDK), as [`consumers`] merges them.
fn renames(service: &ServiceInstance) -> Vec<Rename> {
    consumers(service).into_iter().flat_map(|(consumer, params)| Rename::from_params(&consumer, &params)).collect()
}

/// Who [`consumers`] lists, without their params.
fn consumer_list(service: &ServiceInstance) -> Vec<Consumer> {
    let mut out: Vec<Consumer> = Vec::new();
    for c in service.contributions.iter().filter(|c| gets_env(service, &c.from)) {
        if !out.iter().any(|existing| matches_requester(existing, &c.from)) {
            out.push(consumer(&c.from));
        }
    }
    out
}

/// Whether a contribution's requester gets the service's environment.
fn gets_env(service: &ServiceInstance, from: &Requester) -> bool {
    match from {
        Requester::Project => service.consumers.is_empty(),
        Requester::Package(p) => service.consumers.iter().any(|name| name == p),
    }
}

fn matches_requester(consumer: &Consumer, from: &Requester) -> bool {
    match (consumer, from) {
        (Consumer::Project, Requester::Project) => true,
        (Consumer::Package(a), Requester::Package(b)) => a == b,
        _ => false,
    }
}

fn consumer(r: &Requester) -> Consumer {
    match r {
        Requester::Project => Consumer::Project,
        Requester::Package(p) => Consumer::Package(p.clone()),
    }
}

fn who(r: &Requester) -> String {
    match r {
        Requester::Project => "the project".into(),
        Requester::Package(p) => format!("`{p}`"),
    }
}

/// The packages the project installs, with the sources the uv-package plugin may
/// install them from (and nothing else).
pub fn python_packages(resolution: &Resolution) -> Vec<PythonPackage> {
    resolution
        .packages
        .iter()
        .filter_map(|p| {
            let source = match p.source.as_ref()? {
                hsm_resolve::PackageSource::Pypi { requirement } => PackageSource::Pypi(requirement.clone()),
                hsm_resolve::PackageSource::Path { path, editable: false, .. } => {
                    PackageSource::Path(path.display().to_string())
                }
                hsm_resolve::PackageSource::Path { path, editable: true, .. } => {
                    PackageSource::Editable(path.display().to_string())
                }
            };
            Some(PythonPackage { name: p.name.clone(), source })
        })
        .collect()
}

/// The synthetic service whose contributions are the project's packages (there is
/// at least one).
fn python_service(resolution: &Resolution, packages: &[PythonPackage]) -> ServiceInstance {
    let contributions: Vec<hsm_resolve::Contribution> = packages
        .iter()
        .zip(resolution.packages.iter().filter(|p| p.source.is_some()))
        .map(|(pkg, resolved)| {
            let (key, value) = match &pkg.source {
                PackageSource::Pypi(s) => ("pypi", s),
                PackageSource::Path(s) => ("path", s),
                PackageSource::Editable(s) => ("editable", s),
            };
            let params = Value::Map(IndexMap::from([
                ("name".to_string(), Value::from(pkg.name.as_str())),
                (key.to_string(), Value::from(value.as_str())),
            ]));
            hsm_resolve::Contribution {
                from: Requester::Package(pkg.name.clone()),
                params,
                origin: resolved.origin.clone(),
            }
        })
        .collect();
    ServiceInstance {
        name: PYTHON_SERVICE.into(),
        kind: PYTHON_KIND.into(),
        defaults: Value::Null,
        profile: hsm_resolve::ChosenProfile {
            name: PYTHON_PROFILE.into(),
            mode: hsm_config::Mode::Managed,
            settings: Value::Null,
            chosen_by: Origin { file: resolution.project.file.clone(), line: 1, column: 1 },
            settings_at: Vec::new(),
        },
        contributions,
        consumers: Vec::new(),
    }
}

/// The span an origin points at, for quoting the file in a diagnostic.
fn span_of(origin: &Origin, sources: &Sources) -> Option<Span> {
    let (file, source) = sources.iter().find(|(_, f)| f.display == origin.file)?;
    let line_start: usize =
        source.text.split_inclusive('\n').take(origin.line.saturating_sub(1) as usize).map(str::len).sum();
    let line = source.text[line_start..].lines().next().unwrap_or("");
    let column: usize = line.chars().take(origin.column.saturating_sub(1) as usize).map(char::len_utf8).sum();
    let start = line_start + column;
    let len = source.text[start..].find(['\n', ',', '}']).unwrap_or(0).max(1);
    Some(Span::from_range(file, &source.text, start, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_model::Text;
    use hsm_plan::ConsumerEnv;

    fn service(name: &str, env: Vec<(Consumer, Vec<&str>)>) -> ServicePlan {
        ServicePlan {
            name: name.into(),
            kind: "postgres".into(),
            plugin: "postgres@0.1.0".into(),
            profile: "local".into(),
            mode: Mode::Managed,
            merged: Value::Null,
            actions: Vec::new(),
            env: env
                .into_iter()
                .map(|(consumer, vars)| ConsumerEnv {
                    consumer,
                    vars: vars.into_iter().map(|v| (v.to_string(), Text::literal("x"))).collect(),
                })
                .collect(),
        }
    }

    /// What the check reports, as (second service, consumer, variable, first service).
    fn reported(plan: &Plan) -> Vec<String> {
        match check_across_services(plan) {
            Ok(()) => Vec::new(),
            Err(PlanningError::Input(d)) => d.0.iter().map(|d| d.message.clone()).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    /// The check as one map over every (consumer, variable), in plan order.
    fn expected(plan: &Plan) -> Vec<String> {
        let mut seen = std::collections::HashMap::new();
        let mut out = Vec::new();
        for s in &plan.services {
            for env in &s.env {
                for (name, _) in &env.vars {
                    match seen.get(&(&env.consumer, name.as_str())) {
                        Some(first) => {
                            let who = match &env.consumer {
                                Consumer::Project => "the project".to_string(),
                                Consumer::Package(p) => format!("package `{p}`"),
                            };
                            out.push(format!("services `{first}` and `{}` both give {who} `{name}`", s.name));
                        }
                        None => {
                            seen.insert((&env.consumer, name.as_str()), s.name.clone());
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn services_planned_in_turn_or_on_threads_come_back_in_order() {
        for n in [1, PARALLEL_SERVICES - 1, PARALLEL_SERVICES, 40] {
            let jobs: Vec<Job<'_>> = (0..n).map(|_| Job::Python).collect();
            let at = |job: &Job<'_>| std::ptr::from_ref(job) as usize;
            let planned = plan_in_parallel(&jobs, &[], at);
            assert_eq!(planned, jobs.iter().map(at).collect::<Vec<_>>(), "{n} services");
        }
    }

    #[test]
    fn variables_given_twice_are_reported_in_plan_order() {
        let pkg = |p: &str| Consumer::Package(p.into());
        let mut services = vec![
            service("a", vec![(pkg("x"), vec!["DB_HOST", "DB_PORT"]), (pkg("y"), vec!["URL"])]),
            service("b", vec![(pkg("y"), vec!["URL", "OTHER"]), (pkg("x"), vec!["DB_PORT", "DB_HOST"])]),
            service("c", vec![(pkg("x"), vec!["DB_HOST"]), (pkg("z"), vec!["Z", "Z"])]),
        ];
        // The project consumes many services.
        for i in 0..40 {
            services.push(service(&format!("p{i}"), vec![(Consumer::Project, vec!["SHARED", &format!("OWN_{i}")])]));
        }
        let plan = Plan { project: "p".into(), services, tasks: Vec::new() };
        let want = expected(&plan);
        assert_eq!(want.len(), 2 + 2 + 1 + 39, "{want:#?}");
        assert_eq!(reported(&plan), want);
        assert_eq!(
            reported(&Plan { project: "p".into(), services: plan.services[..1].to_vec(), tasks: Vec::new() }),
            Vec::<String>::new()
        );
    }
}
