//! Redaction: every text that leaves a sync (a container's output or logs, a
//! probe's failure, Docker's messages, uv's progress) has each form of every
//! secret value of the plan replaced by `[redacted]`.

use std::collections::BTreeSet;

use hsm_key::UserKey;
use hsm_plan::{Action, Plan, Probe, ServicePlan, Wait};

use hsm_model::SecretStore;

use super::Syncer;
use crate::error::ExecError;
use crate::names::ProjectId;

/// Redaction outside a sync (`hsm logs`, `hsm task`), with the same forms.
#[derive(Debug)]
pub struct Redactor(Vec<String>);

impl Redactor {
    /// Redacts every form of every secret `plan` refers to.
    pub fn new(plan: &Plan, project: &ProjectId, key: &UserKey, secrets: &SecretStore) -> Self {
        Self(secret_forms(plan, project, key, secrets))
    }

    /// `text` with every secret value replaced by `[redacted]`.
    pub fn apply(&self, text: &str) -> String {
        redact_with(&self.0, text)
    }
}

impl Syncer<'_> {
    /// `text` with every secret value of the plan replaced, in every form hsm writes
    /// it (as it is, percent-encoded): a container's output or log, a probe's
    /// failure or Docker's message can echo them, and all of these are printed.
    pub(crate) fn redact(&self, text: &str) -> String {
        redact_with(&self.secret_forms, text)
    }

    /// [`Syncer::redact`] of each line.
    pub(super) fn redact_lines(&self, lines: Vec<String>) -> Vec<String> {
        lines.iter().map(|l| self.redact(l)).collect()
    }

    /// An error with every text in it redacted: the one way errors leave a sync.
    pub(crate) fn redact_error(&self, e: ExecError) -> ExecError {
        e.map_texts(&|t| self.redact(t))
    }
}

/// Every value a secret of the plan can have in what hsm hands out: the project's
/// secrets and each service's generated ones, in every [`hsm_model::Encoding`]
/// hsm writes them in, longest first (so a value containing another is replaced
/// whole).
pub(super) fn secret_forms(plan: &Plan, project: &ProjectId, key: &UserKey, secrets: &SecretStore) -> Vec<String> {
    let mut values: Vec<String> = secrets.values().map(|v| v.expose().to_string()).collect();
    for svc in &plan.services {
        for name in generated_names(svc) {
            values.push(key.generated(&project.dir, &project.name, &svc.name, &name).into_exposed());
        }
    }
    let mut forms: Vec<String> =
        values.iter().filter(|v| !v.is_empty()).flat_map(|v| hsm_model::Encoding::ALL.map(|e| e.apply(v))).collect();
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms
}

/// `text` with each of `forms` (longest first) replaced by `[redacted]`.
fn redact_with(forms: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for form in forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), "[redacted]");
        }
    }
    out
}

/// The names of the generated secrets a service's plan refers to.
fn generated_names(svc: &ServicePlan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |t: &hsm_model::Text| {
        for p in t.pieces() {
            if let hsm_model::Piece::Generated { name, .. } = p {
                names.insert(name.clone());
            }
        }
    };
    for action in &svc.actions {
        match action {
            Action::EnsureContainer(c) => {
                c.env.iter().for_each(|(_, v)| add(v));
                c.command.iter().flatten().for_each(&mut add);
            }
            Action::Exec(e) | Action::Wait(Wait { probe: Probe::Exec(e), .. }) => {
                e.command.iter().for_each(&mut add);
                e.env.iter().for_each(|(_, v)| add(v));
            }
            _ => {}
        }
    }
    svc.env.iter().flat_map(|e| e.vars.iter()).for_each(|(_, v)| add(v));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoded_form_of_a_secret_is_redacted() {
        let mut forms: Vec<String> = hsm_model::Encoding::ALL.map(|e| e.apply("p@ss/w rd")).into();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let text = "postgresql://u:p%40ss%2Fw%20rd@h/db and p@ss/w rd";
        assert_eq!(redact_with(&forms, text), "postgresql://u:[redacted]@h/db and [redacted]");
    }
}
