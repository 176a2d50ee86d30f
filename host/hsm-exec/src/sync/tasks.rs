//! The packages' `on: sync` tasks, run last in a sync: each once its package is
//! installed and the services it uses are ready, after the tasks of the packages
//! it implies, and only when what it depends on changed since it last succeeded.
//! A failing task fails the sync; the tasks after it that depend on it wait for
//! the next one; nothing is undone.

use std::collections::BTreeSet;

use hsm_plan::{Consumer, TaskOn};

use super::Syncer;
use crate::env::{EnvContext, values};
use crate::error::ExecError;
use crate::report::{Change, ChangeKind, Event};
use crate::tasks::{self, TaskRecord};

impl Syncer<'_> {
    /// Runs the tasks that are due, in the plan's order. `failed` names the
    /// services that failed in this sync: a task that uses one is not run (the
    /// next sync runs it).
    pub(super) async fn run_tasks(&self, failed: &BTreeSet<String>) -> Vec<ExecError> {
        self.forget_unplanned_tasks();
        let mut errors = Vec::new();
        let mut not_done: BTreeSet<String> = BTreeSet::new();
        for task in self.plan.tasks.iter().filter(|t| t.on == TaskOn::Sync) {
            let id = task.id();
            let blocked = task.services.iter().find(|s| failed.contains(*s)).map(|s| format!("service `{s}` failed"));
            // The tasks of the packages it implies, and its package's earlier ones.
            let earlier = self.plan.tasks.iter().take_while(|t| t.id() != id).filter(|t| t.package == task.package);
            let blocked = blocked.or_else(|| {
                task.after
                    .iter()
                    .cloned()
                    .chain(earlier.map(hsm_plan::Task::id))
                    .find(|t| not_done.contains(t))
                    .map(|t| format!("task `{t}` did not run"))
            });
            if let Some(why) = blocked {
                self.cx.reporter.event(Event::Warning(&format!("task `{id}` was not run: {why}")));
                not_done.insert(id);
                continue;
            }
            match self.run_task_if_due(task).await {
                Ok(()) => {}
                Err(e) => {
                    not_done.insert(id);
                    errors.push(e);
                }
            }
        }
        errors
    }

    async fn run_task_if_due(&self, task: &hsm_plan::Task) -> Result<(), ExecError> {
        let id = task.id();
        let (env, python, before) = {
            let state = self.state.lock().expect("state lock");
            let cx =
                EnvContext { project: &self.cx.project, key: self.cx.key, secrets: self.cx.secrets, state: &state };
            let env = values(self.plan, &Consumer::Package(task.package.clone()), &cx)
                .map_err(|e| ExecError::TaskFailed { task: id.clone(), code: None, tail: vec![e.to_string()] })?;
            (env, state.python.clone(), state.tasks.get(&id).cloned())
        };
        let inputs = tasks::inputs(task, self.plan, &self.cx.project.dir, python.as_ref(), &env, self.cx.key);
        let Some(reason) = TaskRecord::why_run(before.as_ref(), &inputs) else { return Ok(()) };
        self.op(None, &format!("task {id}: {}", task.run.join(" ")));
        let mut line = |text: &str| {
            let text = self.redact(text);
            self.cx.reporter.event(Event::TaskOutput { task: &id, line: &text });
        };
        let end = tasks::run(task, &self.cx.project.dir, &env, &mut line).await;
        let (code, ok, tail) = match end {
            Ok(end) => (end.code, end.ok(), end.tail),
            Err(e) => {
                (Some(tasks::could_not_start(&e)), false, vec![format!("could not start `{}`: {e}", task.run[0])])
            }
        };
        // What it depends on as it left it: files it wrote in its package's folder
        // do not make it due again.
        let inputs = if ok {
            tasks::inputs(task, self.plan, &self.cx.project.dir, python.as_ref(), &env, self.cx.key)
        } else {
            inputs
        };
        let record = TaskRecord::now(ok, code, &inputs, before.as_ref());
        self.state.lock().expect("state lock").tasks.insert(id.clone(), record);
        if !ok {
            let tail = tail.iter().map(|l| self.redact(l)).collect();
            return Err(ExecError::TaskFailed { task: id, code, tail });
        }
        self.report(Change {
            service: None,
            action: ChangeKind::RanTask,
            subject: id,
            reason: Some(reason.to_string()),
        });
        Ok(())
    }

    /// Forgets the runs of tasks the plan no longer has.
    fn forget_unplanned_tasks(&self) {
        let planned: BTreeSet<String> = self.plan.tasks.iter().map(hsm_plan::Task::id).collect();
        self.state.lock().expect("state lock").tasks.retain(|id, _| planned.contains(id));
    }
}
