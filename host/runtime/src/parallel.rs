//! One function over many inputs on a few threads, results in input order: how datastores are
//! embedded and conformance records made without a thread-pool dependency.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls `f(index, item)` for every item on `threads` threads (at least one), which take the
/// items in order as they free up, and returns the results in the items' order. `progress`
/// gets the number of items done after each one.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> R + Sync,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(i, item)));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(v) => v,
                // `f` panicked: the panic is the caller's, not a lost result.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_input_order_whatever_the_thread_count() {
        let items: Vec<u64> = (0..1000).collect();
        for threads in [0, 1, 2, 7] {
            let out = super::map(&items, threads, |i, x| (i as u64, x * x), &|_| {});
            assert_eq!(out.len(), items.len());
            assert!(out
                .iter()
                .enumerate()
                .all(|(i, &(j, sq))| i as u64 == j && sq == j * j));
        }
    }

    #[test]
    fn progress_counts_every_item() {
        let count = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        super::map(&[1, 2, 3, 4, 5], 2, |_, x| x + 1, &|n| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            most.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(count.into_inner(), 5);
        assert_eq!(most.into_inner(), 5);
    }
}
