//! The packages' tasks in the plan: in an order that runs each package's after
//! those of the packages it implies, each with the services it waits for.

use std::collections::{HashMap, HashSet};

use hsm_plan::{PYTHON_SERVICE, ServicePlan, Task, TaskOn};
use hsm_resolve::{Resolution, ResolvedPackage};

/// The packages' tasks: each package's after those of every package it implies
/// (depth first, so the order is one a single runner can follow), each with the
/// services whose environment its package gets (a task waits for them).
pub(crate) fn tasks(resolution: &Resolution, services: &[ServicePlan]) -> Vec<Task> {
    let by_name: HashMap<&str, &ResolvedPackage> = resolution.packages.iter().map(|p| (p.name.as_str(), p)).collect();
    // Depth first, post-order: what a package implies comes first (resolution
    // refused cycles).
    fn visit<'r>(
        p: &'r ResolvedPackage,
        by_name: &HashMap<&str, &'r ResolvedPackage>,
        seen: &mut HashSet<&'r str>,
        order: &mut Vec<&'r ResolvedPackage>,
    ) {
        if !seen.insert(&p.name) {
            return;
        }
        for child in p.implies.iter().filter_map(|c| by_name.get(c.as_str())) {
            visit(child, by_name, seen, order);
        }
        order.push(p);
    }
    let (mut seen, mut order) = (HashSet::new(), Vec::new());
    for p in &resolution.packages {
        visit(p, &by_name, &mut seen, &mut order);
    }
    let python = services.iter().any(|s| s.name == PYTHON_SERVICE);
    let mut out: Vec<Task> = Vec::new();
    for p in order.into_iter().filter(|p| !p.tasks.is_empty()) {
        let mut needs: Vec<String> = services
            .iter()
            .filter(|s| s.env.iter().any(|e| e.consumer.package() == Some(&p.name)))
            .map(|s| s.name.clone())
            .collect();
        if python && p.source.is_some() {
            needs.push(PYTHON_SERVICE.to_string());
        }
        let dir = match &p.source {
            Some(hsm_resolve::PackageSource::Path { display, .. }) => display.clone(),
            _ => ".".to_string(),
        };
        // Every task of every package it implies, directly or not.
        let mut below = HashSet::new();
        let mut todo: Vec<&str> = p.implies.iter().map(String::as_str).collect();
        while let Some(name) = todo.pop() {
            if below.insert(name) {
                todo.extend(by_name.get(name).into_iter().flat_map(|c| c.implies.iter().map(String::as_str)));
            }
        }
        let after: Vec<String> = out.iter().filter(|t| below.contains(t.package.as_str())).map(Task::id).collect();
        for t in &p.tasks {
            out.push(Task {
                package: p.name.clone(),
                name: t.name.clone(),
                run: t.run.clone(),
                on: if t.on_demand { TaskOn::Demand } else { TaskOn::Sync },
                dir: dir.clone(),
                services: needs.clone(),
                after: after.clone(),
            });
        }
    }
    out
}
