//! Pretty-printed JSON byte for byte as `serde_json::to_writer_pretty` writes it,
//! with the elements of large arrays serialized on every core: `hsm plan --json` on
//! a large project writes tens of megabytes, and one thread formatting them was a
//! quarter of the run.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use serde::Serialize;
use serde_json::ser::Formatter;

/// serde_json's pretty formatter (two spaces a level), starting at a given depth so
/// that a value can be written on its own and placed inside an enclosing document.
struct Pretty {
    level: usize,
    has_value: bool,
}

fn indent<W: ?Sized + Write>(w: &mut W, level: usize) -> io::Result<()> {
    const SPACES: &[u8] = &[b' '; 64];
    let mut n = level * 2;
    while n > 0 {
        let k = n.min(SPACES.len());
        w.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            indent(w, self.level)?;
        }
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        indent(w, self.level)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            indent(w, self.level)?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        indent(w, self.level)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `value` as `to_writer_pretty` would write it `level` levels deep (the
/// first line unindented, the others indented for that depth).
pub(crate) fn write_at<W: Write, T: Serialize + ?Sized>(w: &mut W, value: &T, level: usize) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, Pretty { level, has_value: false });
    // `From` keeps an I/O error's kind (a closed pipe must stay `BrokenPipe`).
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// A JSON object's member: its key (written as a JSON string) and how to write its
/// value at a given depth.
pub(crate) type Member<'a, W> = (&'a str, &'a dyn Fn(&mut W, usize) -> io::Result<()>);

/// Writes an object whose members' values write themselves, as `to_writer_pretty`
/// would write it `level` levels deep.
pub(crate) fn write_object<W: Write>(w: &mut W, members: &[Member<'_, W>], level: usize) -> io::Result<()> {
    if members.is_empty() {
        return w.write_all(b"{}");
    }
    w.write_all(b"{")?;
    for (i, (key, value)) in members.iter().enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        indent(w, level + 1)?;
        serde_json::to_writer(&mut *w, key).map_err(io::Error::from)?;
        w.write_all(b": ")?;
        value(w, level + 1)?;
    }
    w.write_all(b"\n")?;
    indent(w, level)?;
    w.write_all(b"}")
}

/// Writes `items` as a JSON array, as `to_writer_pretty` would write it `level`
/// levels deep. Runs of elements are serialized on one thread per core while this
/// thread writes the finished ones in order; the output is the same as serializing
/// them one by one.
pub(crate) fn write_array<W: Write, T: Serialize + Sync>(w: &mut W, items: &[T], level: usize) -> io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    write_array_on(w, items, level, threads)
}

/// [`write_array`] on `threads` threads.
fn write_array_on<W: Write, T: Serialize + Sync>(
    w: &mut W,
    items: &[T],
    level: usize,
    threads: usize,
) -> io::Result<()> {
    if items.is_empty() {
        return w.write_all(b"[]");
    }
    // Enough runs that the threads finish together, few enough that each is worth
    // handing over.
    let run = items.len().div_ceil(threads * 16).max(1);
    let runs: Vec<&[T]> = items.chunks(run).collect();
    let write_run = |first: bool, run: &[T], out: &mut Vec<u8>| -> io::Result<()> {
        for (i, item) in run.iter().enumerate() {
            out.extend_from_slice(if first && i == 0 { b"\n" } else { b",\n" });
            indent(out, level + 1)?;
            write_at(out, item, level + 1)?;
        }
        Ok(())
    };
    w.write_all(b"[")?;
    if threads == 1 || runs.len() == 1 {
        let mut out = Vec::new();
        for (i, r) in runs.iter().enumerate() {
            write_run(i == 0, r, &mut out)?;
            w.write_all(&out)?;
            out.clear();
        }
    } else {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        // Runs taken and not yet written: a thread waits for a free one before it
        // takes the next run, so that finished runs can't pile up in memory while
        // this thread writes.
        let window = Window::new(threads * 4);
        // Whichever thread ends first by panicking lets the others go: they stop
        // taking runs, and the scope then passes the panic on.
        let stop_on_panic = || StopOnPanic { stop: &stop, window: &window };
        let (send, receive) = std::sync::mpsc::channel::<(usize, io::Result<Vec<u8>>)>();
        std::thread::scope(|scope| -> io::Result<()> {
            for _ in 0..threads {
                let send = send.clone();
                let (next, stop, runs, write_run, window) = (&next, &stop, &runs, &write_run, &window);
                let stop_on_panic = &stop_on_panic;
                scope.spawn(move || {
                    let _guard = stop_on_panic();
                    while window.take(stop) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(r) = runs.get(i) else { break };
                        let mut out = Vec::with_capacity(64 << 10);
                        let done = write_run(i == 0, r, &mut out).map(|()| out);
                        if send.send((i, done)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(send);
            let _guard = stop_on_panic();
            // Runs arrive in any order; each is written once those before it are.
            let mut pending = std::collections::BTreeMap::new();
            let mut expected = 0;
            let result = (|| {
                for (i, done) in &receive {
                    pending.insert(i, done);
                    while let Some(done) = pending.remove(&expected) {
                        w.write_all(&done?)?;
                        window.give_back();
                        expected += 1;
                    }
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            window.wake_all();
            drop(receive);
            result
        })?;
    }
    w.write_all(b"\n")?;
    indent(w, level)?;
    w.write_all(b"]")
}

/// Stops the other threads of [`write_array`] if its holder's thread panics.
struct StopOnPanic<'a> {
    stop: &'a AtomicBool,
    window: &'a Window,
}

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop.store(true, Ordering::Relaxed);
            self.window.wake_all();
        }
    }
}

/// A count of free places that threads take one at a time, waiting while none is
/// free.
struct Window {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Window {
    fn new(places: usize) -> Self {
        Self { free: Mutex::new(places), freed: Condvar::new() }
    }

    /// Takes a place, waiting for one; `false` (nothing taken) once `stop` is set.
    fn take(&self, stop: &AtomicBool) -> bool {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            if *free > 0 {
                *free -= 1;
                return true;
            }
            free = self.freed.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Gives a place back.
    fn give_back(&self) {
        *self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.freed.notify_one();
    }

    /// Wakes every waiting thread (to see `stop`).
    fn wake_all(&self) {
        let _free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_arrays_are_written_as_serde_json_writes_them() {
        let items: Vec<serde_json::Value> = (0..1000)
            .map(|i| {
                json!({
                    "name": format!("pkg-{i}"),
                    "empty": {}, "none": [], "list": [1, [2, []], {"a": null}],
                    "nested": {"deep": {"deeper": [true, false, "\"quoted\"\n"]}},
                })
            })
            .collect();
        let small = [json!(1), json!({"a": [1]})];
        for items in [&items[..], &items[..1], &small[..], &[][..]] {
            let whole = json!({ "project": {"name": "p", "file": "hsm.yaml"}, "items": items, "after": [] });
            let want = serde_json::to_vec_pretty(&whole).unwrap();
            let mut got = Vec::new();
            let project = |w: &mut Vec<u8>, level| write_at(w, &whole["project"], level);
            let array = |w: &mut Vec<u8>, level| write_array(w, items, level);
            let after = |w: &mut Vec<u8>, level| write_array::<_, serde_json::Value>(w, &[], level);
            write_object(&mut got, &[("project", &project), ("items", &array), ("after", &after)], 0).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap());
        }
    }

    #[test]
    fn every_thread_count_writes_the_same() {
        let items: Vec<serde_json::Value> = (0..300).map(|i| json!({"i": i, "l": [i, {"x": []}]})).collect();
        let want = {
            let mut out = Vec::new();
            write_array_on(&mut out, &items, 1, 1).unwrap();
            out
        };
        for threads in [2, 3, 8] {
            let mut got = Vec::new();
            write_array_on(&mut got, &items, 1, threads).unwrap();
            assert!(got == want, "{threads} threads");
        }
    }

    #[test]
    fn a_panic_while_serializing_is_passed_on_not_a_hang() {
        struct Bomb(usize);
        impl Serialize for Bomb {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                assert!(self.0 != 500, "boom");
                s.serialize_u64(self.0 as u64)
            }
        }
        let items: Vec<Bomb> = (0..1000).map(Bomb).collect();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = write_array_on(&mut Vec::new(), &items, 0, 4);
        }));
        assert!(panicked.is_err());
    }

    #[test]
    fn a_closed_pipe_keeps_its_kind_wherever_it_is_met() {
        let items: Vec<u64> = (0..100).collect();
        let mut full = Full(4);
        let key = |w: &mut Full, level| write_at(w, &1, level);
        let err = write_object(&mut full, &[("a-long-key", &key)], 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let err = write_at(&mut Full(5), &items, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.0 < bytes.len() {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.0 -= bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_stops_the_threads_and_is_reported() {
        let items: Vec<u64> = (0..100_000).collect();
        let err = write_array_on(&mut Full(10_000), &items, 0, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
