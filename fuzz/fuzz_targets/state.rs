//! Fuzzes reading `.hsm/state.json` (hsm-exec's `state`), the file hsm reads at the
//! start of every sync, status and down, and that a crash or a hand edit may have
//! damaged. The input is written as a project's state file and loaded as hsm loads
//! it; a damaged file must be an error that says how to recover, and a state that
//! loads must be written back to text that loads as the same state (what the next
//! run reads).
#![no_main]

use std::sync::OnceLock;

use hsm_exec::names::ProjectId;
use hsm_exec::state::{State, StateError, state_path};
use libfuzzer_sys::fuzz_target;

/// The project whose state file each run writes, the same for every run.
fn project() -> &'static ProjectId {
    static PROJECT: OnceLock<ProjectId> = OnceLock::new();
    PROJECT.get_or_init(|| {
        let project = ProjectId::new("fuzz", &hsm_fuzz::scratch_dir("hsm-fuzz-state-"));
        std::fs::create_dir_all(project.hsm_dir()).expect("the .hsm folder");
        project
    })
}

fuzz_target!(|data: &[u8]| {
    let project = project();
    hsm_fuzz::rewrite(&state_path(project), data);
    match State::load(project) {
        Ok(state) => {
            let text = serde_json::to_string_pretty(&state).expect("a state serializes");
            let again: State = serde_json::from_str(&text).expect("a state written reads back");
            assert_eq!(again, state, "a state written reads back differently");
        }
        // A file that exists and can be read is a state or a damaged one, never an I/O
        // error, which would come without the way out a damaged state gets.
        Err(StateError::Invalid { message, .. }) => assert!(!message.is_empty()),
        Err(e) => panic!("reading a state file that exists failed other than as invalid: {e}"),
    }
});
