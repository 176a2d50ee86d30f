//! A plugin's words (messages, keys, names) as hsm quotes them: printable and
//! bounded, since whatever a plugin returns is hostile input to the terminal.

/// A plugin's words, safe to print: control characters (terminal escapes among
/// them) shown as escapes instead of acted on.
pub fn printable(s: &str) -> String {
    hsm_model::text::printable(s).into_owned()
}

/// A message or key a plugin wrote, as hsm quotes it: printable, and at most
/// [`MAX_WORDS`] characters (a message is a line, not a page).
pub fn plugin_words(s: &str) -> String {
    let shown = printable(s);
    match shown.char_indices().nth(MAX_WORDS) {
        Some((end, _)) => format!("{}…", &shown[..end]),
        None => shown,
    }
}

/// The longest message of a plugin's that hsm quotes whole.
pub const MAX_WORDS: usize = 1000;
