//! Test fixture: a plugin on the SDK's `CallArena` that allocates the way plugins do
//! and harder (many small blocks, vectors grown a push at a time, blocks grown after
//! newer ones, over-aligned blocks, blocks larger than the arena's first region),
//! checks everything it kept, and returns a digest of it. The same `workout` runs
//! natively (system allocator) to give the digest a test expects.

use hsm_sdk::*;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: CallArena = CallArena::new();

/// A block that must be 64-byte aligned.
#[repr(align(64))]
struct Aligned([u8; 100]);

/// Allocates in about `rounds` rounds of varied blocks, checking them as it goes;
/// returns a digest of their contents. Panics (a trap, in a plugin) on any
/// corruption.
pub fn workout(rounds: usize) -> u64 {
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |x: u64| {
        digest ^= x;
        digest = digest.wrapping_mul(0x0100_0000_01b3);
    };
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for i in 0..rounds {
        // Grown a push at a time: resized in place while it is the newest block.
        let v: Vec<u32> = (0..(i % 500) as u32).map(|j| j ^ i as u32).collect();
        let mut pushed = Vec::new();
        for x in &v {
            pushed.push(u64::from(*x));
        }
        let aligned = Box::new(Aligned([i as u8; 100]));
        assert_eq!(std::ptr::from_ref(&*aligned) as usize % 64, 0, "a block lost its alignment");
        names.push(format!("{i}-{}", "x".repeat(i % 97)));
        // Kept, and sometimes grown after newer blocks (so it must move).
        kept.push(vec![(i % 251) as u8; 1 + i % 4000]);
        if i % 7 == 0 && i > 0 {
            let grow = &mut kept[i - 1];
            grow.resize(grow.len() * 3, ((i - 1) % 251) as u8);
        }
        mix(pushed.iter().sum());
        mix(aligned.0.iter().map(|&b| u64::from(b)).sum());
        if i % 100 == 99 {
            // Larger than what is left of the first region, sooner or later.
            let big = vec![i as u8; 300 << 10];
            mix(big.iter().map(|&b| u64::from(b)).sum());
        }
    }
    for (i, block) in kept.iter().enumerate() {
        let byte = (i % 251) as u8;
        assert!(block.iter().all(|&b| b == byte), "kept block {i} was overwritten");
        mix(block.len() as u64);
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name.len(), format!("{i}-").len() + i % 97, "name {i} was overwritten");
        mix(name.len() as u64);
    }
    digest
}

/// Allocates and drops a 1 MiB block `times` times: either as the newest block
/// (which the arena takes back, so memory stays flat) or with a newer one still
/// alive (which it never takes back, so memory grows by 1 MiB a time).
pub fn churn(times: usize, newest: bool) -> u64 {
    let mut sum = 0u64;
    for i in 0..times {
        let block = vec![i as u8; 1 << 20];
        if newest {
            sum += u64::from(block[i % block.len()]);
            drop(block);
        } else {
            let newer = vec![1u8; 16];
            sum += u64::from(block[0]) + u64::from(newer[0]);
            drop(block);
            drop(newer);
        }
    }
    sum
}

/// Where the host placed `text`, a string of the request: `arena` if the arena
/// handed it out (below the block the arena hands out next, in the same region),
/// else `elsewhere` (C's malloc, whose heap lies above the arena's first region).
pub fn placed(text: &str) -> &'static str {
    let next = Box::new(0u8);
    let (at, next) = (text.as_ptr() as usize, std::ptr::from_ref(&*next) as usize);
    if at < next && next - at <= 2 << 20 { "arena" } else { "elsewhere" }
}

/// Where C's malloc places a block, as [`placed`] sees it: must be `elsewhere`.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
pub fn placed_by_malloc() -> &'static str {
    unsafe extern "C" {
        fn malloc(size: usize) -> *mut u8;
    }
    // SAFETY: C's allocator, asked for 1,000 bytes, then only read as a string of
    // them (it is never freed: the instance is dropped whole).
    let block = unsafe {
        let ptr = malloc(1000);
        assert!(!ptr.is_null());
        ptr.write_bytes(b'x', 1000);
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, 1000))
    };
    placed(block)
}

/// Draws `times` times 32 random bytes through wasi-libc (`getentropy`, whose
/// WASI call's result wasi-libc frees with C's `free`) while keeping blocks of the
/// arena alive; returns the bytes' sum.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
pub fn entropy(times: usize) -> u64 {
    unsafe extern "C" {
        fn getentropy(buf: *mut u8, len: usize) -> i32;
    }
    let (mut kept, mut sum) = (Vec::new(), 0u64);
    for i in 0..times {
        let mut buf = [0u8; 32];
        // SAFETY: `buf` is 32 writable bytes.
        assert_eq!(unsafe { getentropy(buf.as_mut_ptr(), buf.len()) }, 0, "getentropy failed");
        sum += buf.iter().map(|&b| u64::from(b)).sum::<u64>();
        kept.push(vec![i as u8; 100]);
    }
    sum + kept.len() as u64
}

/// The plugin: `merge` runs [`workout`] with the `rounds` its defaults give, or
/// [`churn`] with `churn` times (`newest` says how), or [`placed`] on the string
/// `placed` (on a block of C's malloc with `placed_by_malloc`), or draws random
/// bytes `entropy` times (with the wasm-only `entropy`), and returns the result as
/// text.
pub struct Arena;

impl Backend for Arena {
    fn describe() -> PluginInfo {
        PluginInfo::new("arena", "0.1.0", ["arena"])
    }

    fn merge(req: MergeRequest) -> Result<Value, MergeError> {
        if let Some(text) = req.defaults.get("placed").and_then(Value::as_str) {
            return Ok(Value::from(placed(text)));
        }
        #[cfg(target_arch = "wasm32")]
        if req.defaults.get("placed_by_malloc").is_some() {
            return Ok(Value::from(placed_by_malloc()));
        }
        #[cfg(target_arch = "wasm32")]
        if let Some(times) = req.defaults.get("entropy").and_then(Value::as_int) {
            return Ok(Value::from(entropy(times as usize).to_string()));
        }
        let int = |key: &str| req.defaults.get(key).and_then(Value::as_int).unwrap_or(0) as usize;
        let result = match int("churn") {
            0 => workout(int("rounds")),
            times => churn(times, req.defaults.get("newest").and_then(Value::as_bool).unwrap_or(false)),
        };
        Ok(Value::from(result.to_string()))
    }

    fn plan(_req: PlanRequest) -> Result<Plan, PlanError> {
        Ok(Plan::new())
    }
}

export_plugin!(Arena);
