//! Fuzzes interpolation on its own (hsm-config's `interp`): parsing a template
//! and resolving it against an environment with set, empty and unset variables.
//! An error is rendered at its place in the text, as the loader renders it (which
//! slices the text at the error's offsets), and the two ways of resolving must
//! agree.
#![no_main]

use std::collections::HashMap;

use hsm_config::interp::{Resolved, Template};
use hsm_model::{Diagnostic, Sources, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let template = match Template::parse(s) {
        Ok(t) => t,
        Err(e) => {
            let mut sources = Sources::new();
            let file = sources.add("hsm.yaml", None, s);
            let _ = Diagnostic::new(e.message).at(Span::from_range(file, s, e.start, e.len), "").render(&sources);
            return;
        }
    };
    let _ = template.variables();
    let env = HashMap::from([
        ("A".to_string(), "alpha".to_string()),
        ("EMPTY".to_string(), String::new()),
        ("DOLLAR".to_string(), "$A ${A}".to_string()),
    ]);
    let joined = template.resolve_string(&env);
    match template.resolve(&env) {
        Ok(parts) => {
            let whole: String = parts
                .iter()
                .map(|p| match p {
                    Resolved::Lit(l) => l.as_str(),
                    Resolved::Expr { value, .. } => value.as_str(),
                })
                .collect();
            assert_eq!(joined.ok(), Some(whole), "resolve and resolve_string disagree");
        }
        Err(_) => assert!(joined.is_err(), "resolve failed where resolve_string did not"),
    }
});
