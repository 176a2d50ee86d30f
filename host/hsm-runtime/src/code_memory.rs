//! Making compiled plugin code executable where it lies, so the bundled plugins'
//! native code runs straight from hsm's binary instead of being copied into fresh
//! memory on every start (the copy and its page faults were most of what loading
//! them cost).

use std::ptr::NonNull;

use wasmtime::component::Component;
use wasmtime::{CustomCodeMemory, Engine};

/// Whether code is published by [`CodeProtection`] and bundled code run in place:
/// only on x86-64, whose instruction caches are coherent with data writes and
/// whose code pages need no branch-target marking (arm64's BTI). Elsewhere
/// wasmtime's own publisher, which does both, is used and the code is copied.
pub(crate) const SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// How the bundled plugins' native code is aligned in the binary (a page on
/// x86-64 and on most Linux arm64 machines). On a machine with bigger pages the
/// code is copied instead, as for any other component.
pub(crate) const CODE_ALIGN: usize = 4096;

/// Bytes aligned to [`CODE_ALIGN`], and a whole number of such pages long, so that
/// making them executable touches nothing else in the binary.
#[repr(C, align(4096))]
pub(crate) struct PageAligned<T: ?Sized>(pub(crate) T);

/// Sets the protection of code pages with `mprotect`, like wasmtime's own code
/// does, but for any memory: both the maps wasmtime makes for code it copies or
/// compiles, and the bundled plugins' code in the binary's read-only data.
pub(crate) struct CodeProtection;

impl CustomCodeMemory for CodeProtection {
    fn required_alignment(&self) -> usize {
        // The range is widened to whole pages here instead.
        1
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        let page = page_size();
        let start = ptr as usize & !(page - 1);
        let end = (ptr as usize + len).next_multiple_of(page);
        // SAFETY: `ptr..ptr + len` is code wasmtime owns or was handed (a copy it
        // mapped, or a `PageAligned` static), and the widened range stays inside
        // it: wasmtime's maps are whole pages, and a `PageAligned` static fills
        // whole pages when pages are no bigger than `CODE_ALIGN` (see
        // `load_in_place`). Read + execute only removes write access, which
        // wasmtime has already removed from everything in the range.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_READ | libc::PROT_EXEC) };
        if rc != 0 {
            return Err(wasmtime::Error::msg(format!(
                "making plugin code executable: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    fn unpublish_executable(&self, _ptr: *const u8, _len: usize) -> wasmtime::Result<()> {
        // wasmtime calls this only when dropping code (hsm never edits code in
        // place). Code it mapped is unmapped right after, as its own handler does
        // without changing protections first; code in the binary stays executable,
        // because other loads of the same plugin may still be running it.
        Ok(())
    }
}

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// Loads native code that stays where it is: a component precompiled into hsm's
/// binary. `None` where that is not [`SUPPORTED`], where pages are bigger than the
/// code's alignment, or if the engine refuses it; the caller then copies it.
///
/// # Safety
///
/// `code` must be the output of `precompile_component` (this build's own), and
/// `engine` must have been configured with [`CodeProtection`].
#[allow(unsafe_code)]
pub(crate) unsafe fn load_in_place(engine: &Engine, code: &'static PageAligned<[u8]>) -> Option<Component> {
    if !SUPPORTED || page_size() > CODE_ALIGN {
        return None;
    }
    // SAFETY: the caller's contract, and `code` is immutable static data, alive
    // for as long as the process.
    unsafe { Component::deserialize_raw(engine, NonNull::from(&code.0)) }.ok()
}
