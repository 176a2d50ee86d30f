//! One convention for every error that reaches the command line: its message (the
//! `Display`, literals in backticks), its causes (`source`), what the user can do
//! about it, and whether the user's input was wrong (exit code 2) rather than the
//! job failing (exit code 1). The CLI renders any of them the same way.

/// What the CLI needs of an error besides its message and causes.
pub trait Explain: std::error::Error {
    /// What the user can do about it, when there is something to say (the CLI
    /// prints it on a `hint:` line).
    fn hint(&self) -> Option<String> {
        None
    }

    /// Whether the user's input (files, arguments) is wrong and nothing was
    /// changed: exit code 2. Otherwise the job failed: exit code 1.
    fn is_input(&self) -> bool {
        false
    }

    /// What the lines of [`Explain::details`] are, when there are any.
    fn details_title(&self) -> Option<String> {
        None
    }

    /// Lines to show below the message (a container's last log lines, say).
    fn details(&self) -> &[String] {
        &[]
    }
}
