//! The plan's `exec` actions: a command run in a container once per container
//! instance (the state remembers which ran), and how a command is shown.

use std::collections::HashMap;

use hsm_plan::ServicePlan;

use super::Syncer;
use crate::error::ExecError;
use crate::refs::ServiceRefs;
use crate::report::{Change, ChangeKind};
use crate::spec::{self, Exposer};

/// How long a setup command waits for the same command that a killed sync left
/// running in the container; after that it runs anyway.
const SAME_EXEC_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl Syncer<'_> {
    /// Resolves an exec action of a service with the state as it is now.
    pub(super) fn build_exec(&self, svc: &ServicePlan, e: &hsm_plan::Exec) -> Result<spec::BuiltExec, String> {
        let state = self.state.lock().expect("state lock");
        let refs = ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
        spec::build_exec(e, &Exposer { secrets: self.cx.secrets, refs: &refs, key: self.cx.key })
    }

    pub(super) async fn exec(
        &self,
        svc: &ServicePlan,
        e: &hsm_plan::Exec,
        ids: &HashMap<String, String>,
    ) -> Result<(), ExecError> {
        let built =
            self.build_exec(svc, e).map_err(|message| ExecError::Reference { service: svc.name.clone(), message })?;
        let id = ids.get(&e.container).cloned().unwrap_or_default();
        {
            let mut state = self.state.lock().expect("state lock");
            let entry = state.container_mut(&svc.name, &e.container);
            entry.new_instance(&id);
            if entry.execs.contains(&built.hash) {
                return Ok(());
            }
        }
        let name = self.cx.project.container(&svc.name, &e.container);
        let shown = shown_command(&e.command);
        // The same command left running by a sync that was killed finishes first.
        self.docker.wait_for_same_exec(&id, &built.cmd, SAME_EXEC_WAIT).await?;
        self.op(Some(&svc.name), &format!("exec in {name}: {shown}"));
        let (code, output) = self.docker.exec(&id, built.cmd, built.env, e.user.clone()).await?;
        if code != 0 {
            return Err(ExecError::ExecFailed {
                service: svc.name.clone(),
                container: name,
                command: shown,
                code,
                output: self.redact(&output),
            });
        }
        self.state.lock().expect("state lock").container_mut(&svc.name, &e.container).execs.push(built.hash);
        self.report(Change {
            service: Some(svc.name.clone()),
            action: ChangeKind::RanExec,
            subject: format!("`{shown}` in {name}"),
            reason: None,
        });
        Ok(())
    }
}

/// A command as shown to people: its words with references, never values; a word
/// with spaces is quoted, a long or multi-line one cut (`sh -c 'set -eu…'`).
pub(super) fn shown_command(words: &[hsm_model::Text]) -> String {
    let shown: Vec<String> = words
        .iter()
        .map(|w| {
            let (first, more) = w.first_line();
            let first = first.display();
            let cut = first.chars().count() > 40 || more;
            let mut word: String = first.chars().take(40).collect();
            if cut {
                word.push('…');
            }
            if word.contains([' ', '\t', '\'', '"']) || cut { format!("'{word}'") } else { word }
        })
        .collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use hsm_model::Text;

    use super::*;

    #[test]
    fn commands_are_shown_short_and_quoted() {
        let words: Vec<Text> = ["pg_isready", "-q", "-U", "postgres"].into_iter().map(Text::from).collect();
        assert_eq!(shown_command(&words), "pg_isready -q -U postgres");
        let script: Vec<Text> =
            ["sh", "-c", "set -eu\nfor db in x; do\n  echo\ndone"].into_iter().map(Text::from).collect();
        assert_eq!(shown_command(&script), "sh -c 'set -eu…'");
    }
}
