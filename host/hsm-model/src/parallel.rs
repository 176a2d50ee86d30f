//! Independent pieces of work done on every core with results in their own order:
//! loading registry files, resolving services and planning them are each a map over
//! items that don't depend on each other, and what users and caches see must not
//! depend on how the work was spread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How [`map_in_order`] spreads its work.
#[derive(Clone, Copy, Debug)]
pub struct Spread<'a> {
    /// At most this many threads; 0 for one per core.
    pub threads: usize,
    /// Fewer items than this per thread are not worth a thread: with fewer than
    /// twice as many in all, everything is done on the calling thread.
    pub min_per_thread: usize,
    /// The order items are taken in, as indices into them (the biggest first, say,
    /// so that no thread is left with a long tail); `None` for their own order.
    pub take_order: Option<&'a [usize]>,
}

impl Default for Spread<'_> {
    /// One thread per core, down to one item each, items taken in order.
    fn default() -> Self {
        Self { threads: 0, min_per_thread: 1, take_order: None }
    }
}

/// `f` of every item, returned in the items' order whatever order they were done
/// in. Threads take the next item from a shared counter, so one slow item does not
/// hold up the rest. A panic in `f` is passed on to the caller.
pub fn map_in_order<T: Sync, R: Send>(items: &[T], spread: Spread<'_>, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = match spread.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let threads = cores.min(items.len() / spread.min_per_thread.max(1));
    let nth = |k: usize| -> Option<usize> {
        match spread.take_order {
            Some(order) => order.get(k).copied(),
            None => (k < items.len()).then_some(k),
        }
    };
    if threads <= 1 {
        let mut done: Vec<(usize, R)> = (0..).map_while(nth).map(|i| (i, f(&items[i]))).collect();
        done.sort_unstable_by_key(|(i, _)| *i);
        return done.into_iter().map(|(_, r)| r).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(i) = nth(next.fetch_add(1, Ordering::Relaxed)) {
                        done.push((i, f(&items[i])));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    assert_eq!(done.len(), items.len(), "a take order names every item once");
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order_however_the_work_is_spread() {
        let items: Vec<u64> = (0..500).collect();
        let want: Vec<u64> = items.iter().map(|i| i * i).collect();
        let reversed: Vec<usize> = (0..items.len()).rev().collect();
        for threads in [0, 1, 2, 3, 8] {
            for min_per_thread in [1, 64, 1000] {
                for take_order in [None, Some(reversed.as_slice())] {
                    let spread = Spread { threads, min_per_thread, take_order };
                    assert_eq!(map_in_order(&items, spread, |i| i * i), want, "{spread:?}");
                }
            }
        }
        assert!(map_in_order(&[] as &[u8], Spread::default(), |_| 0).is_empty());
    }

    #[test]
    fn items_are_taken_in_the_order_given() {
        let items = ["a", "b", "c"];
        let order = [2, 0, 1];
        let taken = std::sync::Mutex::new(Vec::new());
        let spread = Spread { threads: 1, take_order: Some(&order), ..Spread::default() };
        let out = map_in_order(&items, spread, |s| {
            taken.lock().unwrap().push(*s);
            s.to_uppercase()
        });
        assert_eq!(out, ["A", "B", "C"]);
        assert_eq!(*taken.lock().unwrap(), ["c", "a", "b"]);
    }

    #[test]
    fn a_panic_on_a_thread_reaches_the_caller() {
        let items: Vec<u32> = (0..100).collect();
        let spread = Spread { threads: 2, ..Spread::default() };
        let caught = std::panic::catch_unwind(|| map_in_order(&items, spread, |&i| assert!(i != 57, "item 57")));
        let panic = caught.expect_err("the panic is passed on");
        let message = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
        assert_eq!(message, Some("item 57"));
    }
}
