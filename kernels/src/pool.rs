//! A small persistent thread pool for splitting large kernels, built for shared cores.
//!
//! - Helpers sleep on a condition variable between jobs: nothing ever spins (ggml's spinning
//!   barriers lose 100x on two busy cores).
//! - The calling thread works too, claiming tasks from the same atomic counter. If a helper is
//!   not scheduled in time (the core is busy with something else), the caller simply does its
//!   share; it never waits for a helper that has not started, only for tasks a helper has
//!   already claimed.
//! - Helpers are created once, lazily, one fewer than the cores available.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// One parallel call: `total` tasks handed out by `next`.
struct Job<'a> {
    task: &'a (dyn Fn(usize) + Sync),
    next: AtomicUsize,
    total: usize,
    /// Set if a task panicked on a helper; the caller panics in turn.
    panicked: AtomicBool,
}

impl Job<'_> {
    /// Claims and runs tasks until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.total {
                return;
            }
            (self.task)(i);
        }
    }
}

/// A published job, its lifetime erased. Sound because [`Pool::run`] unpublishes it and waits
/// until no helper is inside it before the borrowed `Job` goes out of scope.
#[derive(Clone, Copy)]
struct JobPtr(*const Job<'static>);
// SAFETY: the pointee is a `Job`, whose fields are Sync (`task` is `dyn Fn + Sync`, the rest
// atomics); the pointer is only dereferenced while `run` keeps the job alive (see JobPtr).
unsafe impl Send for JobPtr {}

struct State {
    job: Option<JobPtr>,
    /// Incremented per published job, so a helper joins each job at most once.
    generation: u64,
    /// Helpers currently inside the published job.
    active: usize,
    /// How many helpers the published job may use.
    max_helpers: usize,
}

struct Pool {
    state: Mutex<State>,
    /// Signals helpers (a job was published) and the caller (a helper left a job).
    cv: Condvar,
    helpers: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let helpers = crate::dispatch::default_threads().saturating_sub(1);
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            state: Mutex::new(State {
                job: None,
                generation: 0,
                active: 0,
                max_helpers: 0,
            }),
            cv: Condvar::new(),
            helpers,
        }));
        for i in 0..helpers {
            // A helper that cannot be spawned only means less parallelism.
            let _ = std::thread::Builder::new()
                .name(format!("edgenlu-kernels-{i}"))
                .spawn(move || helper(pool));
        }
        pool
    })
}

fn helper(pool: &'static Pool) {
    let mut seen = 0u64;
    loop {
        let job = {
            let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = st.job {
                    if st.generation != seen && st.active < st.max_helpers {
                        seen = st.generation;
                        st.active += 1;
                        break job;
                    }
                }
                st = pool.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        // SAFETY: `run` does not return (so the Job stays alive) while `active` counts us.
        let job = unsafe { &*job.0 };
        if catch_unwind(AssertUnwindSafe(|| job.work())).is_err() {
            job.panicked.store(true, Ordering::Relaxed);
        }
        let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        st.active -= 1;
        drop(st);
        pool.cv.notify_all();
    }
}

/// Runs `task(0..total)` on the calling thread plus up to `threads - 1` pool helpers, and
/// returns when every task has finished. Tasks may run in any order and concurrently.
pub(crate) fn run(total: usize, threads: usize, task: &(dyn Fn(usize) + Sync)) {
    let job = Job {
        task,
        next: AtomicUsize::new(0),
        total,
        panicked: AtomicBool::new(false),
    };
    let pool = pool();
    let helpers = threads.saturating_sub(1).min(pool.helpers);
    if helpers == 0 || total <= 1 {
        job.work();
        return;
    }
    {
        let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        // Only one job is published at a time; a second concurrent caller just works alone.
        if st.job.is_some() {
            drop(st);
            job.work();
            return;
        }
        // SAFETY (lifetime erasure): see JobPtr; we unpublish and wait below.
        #[allow(clippy::unnecessary_cast)] // the cast is what erases the lifetime
        let ptr = &job as *const Job<'_> as *const Job<'static>;
        st.job = Some(JobPtr(ptr));
        st.generation += 1;
        st.max_helpers = helpers;
    }
    pool.cv.notify_all();
    // Even if a task panics here, helpers must be out of the job before it is dropped.
    let caller = catch_unwind(AssertUnwindSafe(|| job.work()));
    {
        let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        // No helper can enter from here on; wait for those inside to finish their tasks.
        st.job = None;
        while st.active > 0 {
            st = pool.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
    if let Err(p) = caller {
        std::panic::resume_unwind(p);
    }
    if job.panicked.load(Ordering::Relaxed) {
        panic!("a kernel task panicked on a pool thread");
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_exactly_once_even_with_concurrent_callers() {
        std::thread::scope(|s| {
            for caller in 0..4 {
                s.spawn(move || {
                    for round in 0..50 {
                        let total = 1 + (caller * 37 + round * 11) % 64;
                        let hits: Vec<AtomicUsize> =
                            (0..total).map(|_| AtomicUsize::new(0)).collect();
                        run(total, 2 + caller % 2, &|i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_survives() {
        let r = std::panic::catch_unwind(|| run(64, 2, &|i| assert!(i != 40, "task 40")));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        run(64, 2, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 64);
    }
}
