//! Fuzzes `.env` files as hsm reads them (hsm-config's `dotenv` and `env`):
//! parsing, then looking up every key (which resolves values that refer to keys
//! defined before them) and rendering every error at its place in the file, as the
//! loader does (diagnostics slice the file at the offsets the parser returns).
#![no_main]

use std::collections::HashMap;

use hsm_config::Environment;
use hsm_config::dotenv;
use hsm_config::interp::Lookup;
use hsm_model::{Diagnostic, Sources, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut sources = Sources::new();
    let file = sources.add(".env", None, text);
    let entries = match dotenv::parse(text) {
        Ok(entries) => entries,
        Err(e) => {
            let _ = Diagnostic::new(e.message).at(Span::from_range(file, text, e.start, e.len), "").render(&sources);
            return;
        }
    };
    for e in &entries {
        assert_eq!(text.get(e.key_start..e.key_start + e.key.len()), Some(e.key.as_str()), "a key's offset");
    }
    let keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    let process = HashMap::from([("HOME".to_string(), "/home/fuzz".to_string()), ("EMPTY".to_string(), String::new())]);
    let mut env = Environment::new(process);
    env.add_dotenv(file, ".env", text.into(), entries);
    for key in &keys {
        let _ = env.dotenv_definition(key);
        if let Err(d) = env.lookup(key) {
            let _ = d.render(&sources);
        }
    }
});
