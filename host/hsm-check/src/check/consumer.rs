//! The check of what a plugin puts into its consumers' environment: names it
//! declared (or was granted), of no refused family, from a reviewed plugin;
//! values of one visible line that don't point into `.hsm/`.

use hsm_model::{Piece, Text};
use hsm_plan::Consumer;

use super::{Checker, Refusal};

impl Checker<'_> {
    /// A variable a consumer gets. Checked one by one without building a
    /// description first: plans give hundreds of thousands of them.
    pub(super) fn consumer_var(&mut self, consumer: &Consumer, name: &str, value: &Text) -> Result<(), Refusal> {
        let what = || {
            let whose = match consumer {
                Consumer::Project => "the project's".to_string(),
                Consumer::Package(p) => format!("package `{p}`'s"),
            };
            format!("set `{}` in {whose} environment", name.escape_debug())
        };
        if !self.approved.contains(name) {
            match self.consumer_name(consumer, name, &what) {
                // A renamed variable is approved for its consumer only.
                Ok(()) if self.grants.allows_variable(self.info, name) => drop(self.approved.insert(name.to_string())),
                Ok(()) => {}
                Err(r) if r.unreviewed || r.missing_variable.is_some() => self.defer(r),
                Err(r) => return Err(r),
            }
        }
        if let Some(c) = crate::env_rules::hidden_in(value) {
            return Err(self.refuse(
                what(),
                format!(
                    "its value holds the control or invisible character {c:?}; a variable's value is one line of visible text"
                ),
                None,
            ));
        }
        if crate::env_rules::points_into_hsm(value) {
            return Err(self.refuse(
                what(),
                format!(
                    "its value `{}` points into `.hsm/`, where plugins write files: a program told to read them would do what the plugin's files say",
                    value.display()
                ),
                None,
            ));
        }
        // Described only when there is a reference to check: plans give hundreds
        // of thousands of variables.
        if value.pieces().iter().any(|p| matches!(p, Piece::HostPort { .. })) {
            self.text(value, &what())?;
        }
        Ok(())
    }

    /// Whether the plugin may give `consumer` a variable of that name: a name hsm
    /// accepts, of no refused family, from a reviewed plugin that declares (or is
    /// granted) it or the name the consumer renamed it from.
    fn consumer_name(&self, consumer: &Consumer, name: &str, what: &dyn Fn() -> String) -> Result<(), Refusal> {
        if !crate::env_rules::is_env_name(name) {
            return Err(self.refuse(
                what(),
                "it is not a variable name hsm accepts (an ASCII letter or `_`, then letters, digits and `_`, at most 128 bytes)",
                None,
            ));
        }
        if let Some(why) = crate::env_rules::refused_name(name) {
            return Err(self.refuse(what(), why, None));
        }
        if !self.grants.reviewed {
            let mut refusal = self.refuse(
                what(),
                "no entry of hsm.yaml reviews this plugin, and an unreviewed plugin gives packages no environment",
                None,
            );
            refusal.unreviewed = true;
            return Err(refusal);
        }
        let renamed_from_allowed = || {
            self.ctx
                .renames
                .iter()
                .any(|r| r.to == name && &r.consumer == consumer && self.grants.allows_variable(self.info, &r.from))
        };
        if self.grants.allows_variable(self.info, name) || renamed_from_allowed() {
            return Ok(());
        }
        let reason = match &self.info.variables {
            Some(declared) => format!(
                "it does not declare that variable (it declares {})",
                hsm_model::names_or_none(declared.iter().map(|v| v.name.as_str()))
            ),
            None => format!(
                "the variable is not granted to it (built for an older WIT, it can't declare its variables; it is granted {})",
                hsm_model::names_or_none(self.grants.variables.iter().map(String::as_str))
            ),
        };
        let mut refusal = self.refuse(what(), reason, None);
        if self.info.variables.is_none() {
            refusal.missing_variable = Some(name.into());
        }
        Err(refusal)
    }
}
