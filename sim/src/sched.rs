//! The scheduler under every simulation: virtual time and a deterministic interleaving of a
//! run's tasks (clients, txg sync, crashes). With `--cfg madsim` (set for the workspace in
//! `.cargo/config.toml`) it is madsim's runtime; without it (`cargo fuzz` replaces the
//! config's flags with its own RUSTFLAGS) it is `fallback`, a small seeded executor with the
//! same semantics: one OS thread, a seeded random pick among ready tasks, and time that jumps
//! to the next timer when every task waits. Called by run.rs; knows nothing of the engine.
//! Invariants: no OS thread and no wall clock inside a run; every choice comes from the seed.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

/// Shortest sleep: madsim rounds every sleep up to 1 ms (as tokio does); `fallback` too.
pub const SLEEP_MIN: Duration = Duration::from_millis(1);

/// Which executor runs a simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// madsim's runtime (only in builds with `--cfg madsim`).
    Madsim,
    /// `fallback`: this module's seeded executor (any build).
    Fallback,
}

impl Executor {
    /// madsim when the build has `--cfg madsim`, else the fallback.
    pub const DEFAULT: Self = if cfg!(madsim) { Self::Madsim } else { Self::Fallback };
}

impl Default for Executor {
    fn default() -> Self {
        Self::DEFAULT
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Executor>> = const { Cell::new(None) };
}

fn active() -> Executor {
    ACTIVE.with(Cell::get).expect("invariant: called inside sched::block_on")
}

/// Resets the active executor when `block_on` returns or unwinds.
struct ActiveGuard;

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(None));
    }
}

/// Run `fut` to completion on a fresh runtime of `executor` seeded with `seed` (madsim's
/// random choices, or the fallback's). Panics inside tasks propagate to the caller.
///
/// # Panics
/// When nested, or when `executor` is madsim in a build without `--cfg madsim`.
pub fn block_on<F: Future>(executor: Executor, seed: u64, fut: F) -> F::Output {
    assert!(ACTIVE.with(Cell::get).is_none(), "nested sched::block_on");
    ACTIVE.with(|a| a.set(Some(executor)));
    let _guard = ActiveGuard;
    match executor {
        Executor::Madsim => madsim_block_on(seed, fut),
        Executor::Fallback => fallback::block_on(seed, fut),
    }
}

#[cfg(madsim)]
fn madsim_block_on<F: Future>(seed: u64, fut: F) -> F::Output {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(fut)
}

#[cfg(not(madsim))]
fn madsim_block_on<F: Future>(seed: u64, fut: F) -> F::Output {
    let _ = (seed, fut);
    panic!(
        "this build has no --cfg madsim (a RUSTFLAGS variable replaces .cargo/config.toml): \
         use Executor::Fallback"
    )
}

/// A spawned task; `join` waits for its output.
pub struct JoinHandle<T>(JoinInner<T>);

enum JoinInner<T> {
    #[cfg(madsim)]
    Madsim(madsim::task::JoinHandle<T>),
    Fallback(fallback::JoinHandle<T>),
}

impl<T> JoinHandle<T> {
    /// Wait for the task's output.
    pub async fn join(self) -> T {
        match self.0 {
            #[cfg(madsim)]
            JoinInner::Madsim(h) => h.await.expect("invariant: sim tasks are never cancelled"),
            JoinInner::Fallback(h) => h.await,
        }
    }
}

/// Spawn `fut` on the running simulation (a local task: the run is one OS thread).
pub fn spawn<F: Future + 'static>(fut: F) -> JoinHandle<F::Output> {
    match active() {
        #[cfg(madsim)]
        Executor::Madsim => JoinHandle(JoinInner::Madsim(madsim::task::spawn_local(fut))),
        #[cfg(not(madsim))]
        Executor::Madsim => unreachable!("madsim is not active in this build"),
        Executor::Fallback => JoinHandle(JoinInner::Fallback(fallback::spawn(fut))),
    }
}

/// Sleep `d` of virtual time (at least `SLEEP_MIN`).
pub async fn sleep(d: Duration) {
    match active() {
        #[cfg(madsim)]
        Executor::Madsim => madsim::time::sleep(d).await,
        #[cfg(not(madsim))]
        Executor::Madsim => unreachable!("madsim is not active in this build"),
        Executor::Fallback => fallback::sleep(d).await,
    }
}

/// Virtual time since the simulation started.
#[must_use]
pub fn elapsed() -> Duration {
    match active() {
        #[cfg(madsim)]
        Executor::Madsim => madsim::time::TimeHandle::current().elapsed(),
        #[cfg(not(madsim))]
        Executor::Madsim => unreachable!("madsim is not active in this build"),
        Executor::Fallback => fallback::elapsed(),
    }
}

/// The fallback executor: single-threaded, seeded, virtual time. Each step runs one task
/// drawn at random (ChaCha8 from the seed) among the ready ones; when none is ready, time
/// jumps to the earliest timer. Same contract as madsim's `block_on`/`spawn_local`/`sleep`.
pub mod fallback {
    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, BTreeSet};
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::SLEEP_MIN;

    /// Task id of the future given to `block_on` (spawned tasks count from 0).
    const MAIN: usize = usize::MAX;
    /// Most tasks one simulation may spawn (a run spawns a handful).
    pub const TASKS_MAX: usize = 1 << 16;

    type LocalTask = Pin<Box<dyn Future<Output = ()>>>;

    struct Core {
        now: Cell<Duration>,
        timers: RefCell<BTreeMap<(Duration, u64), Waker>>,
        timer_seq: Cell<u64>,
        tasks: RefCell<Vec<Option<LocalTask>>>,
        ready: Arc<Mutex<BTreeSet<usize>>>,
        rng: RefCell<ChaCha8Rng>,
    }

    thread_local! {
        static CORE: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    }

    fn core() -> Rc<Core> {
        CORE.with(|c| c.borrow().clone()).expect("invariant: inside fallback::block_on")
    }

    struct TaskWaker {
        id: usize,
        ready: Arc<Mutex<BTreeSet<usize>>>,
    }

    impl Wake for TaskWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.ready.lock().expect("invariant: ready set never poisoned").insert(self.id);
        }
    }

    struct CoreGuard;

    impl Drop for CoreGuard {
        fn drop(&mut self) {
            // Drop the tasks outside the thread-local borrow (their drops may touch it).
            let core = CORE.with(|c| c.borrow_mut().take());
            drop(core);
        }
    }

    /// Run `fut` and every task it spawns until `fut` completes.
    ///
    /// # Panics
    /// When every task waits and no timer is armed (a deadlock), or when nested.
    pub fn block_on<F: Future>(seed: u64, fut: F) -> F::Output {
        let ready = Arc::new(Mutex::new(BTreeSet::from([MAIN])));
        let core = Rc::new(Core {
            now: Cell::new(Duration::ZERO),
            timers: RefCell::new(BTreeMap::new()),
            timer_seq: Cell::new(0),
            tasks: RefCell::new(Vec::new()),
            ready: Arc::clone(&ready),
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
        });
        CORE.with(|c| {
            assert!(c.borrow().is_none(), "nested fallback::block_on");
            *c.borrow_mut() = Some(Rc::clone(&core));
        });
        let _guard = CoreGuard;
        let mut fut = std::pin::pin!(fut);
        let main_waker = Waker::from(Arc::new(TaskWaker { id: MAIN, ready: Arc::clone(&ready) }));
        loop {
            let Some(id) = pick_ready(&core) else {
                advance_time(&core);
                continue;
            };
            if id == MAIN {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&main_waker)) {
                    return v;
                }
            } else {
                poll_task(&core, id);
            }
        }
    }

    /// Remove and return a random ready task id.
    fn pick_ready(core: &Core) -> Option<usize> {
        let mut ready = core.ready.lock().expect("invariant: ready set never poisoned");
        if ready.is_empty() {
            return None;
        }
        let n = core.rng.borrow_mut().random_range(0..ready.len());
        let id = *ready.iter().nth(n).expect("invariant: n < len");
        assert!(ready.remove(&id));
        Some(id)
    }

    /// Every task waits: jump to the earliest timer and wake all timers due then.
    fn advance_time(core: &Core) {
        let mut timers = core.timers.borrow_mut();
        let Some((&(deadline, _), _)) = timers.iter().next() else {
            panic!("deadlock: every task waits and no timer is armed");
        };
        assert!(deadline >= core.now.get(), "timer in the past");
        core.now.set(deadline);
        while let Some(entry) = timers.first_entry() {
            if entry.key().0 > deadline {
                break;
            }
            entry.remove().wake();
        }
    }

    fn poll_task(core: &Core, id: usize) {
        let Some(mut task) = core.tasks.borrow_mut()[id].take() else {
            return; // finished; a stale wake
        };
        let ready = Arc::clone(&core.ready);
        let waker = Waker::from(Arc::new(TaskWaker { id, ready }));
        if task.as_mut().poll(&mut Context::from_waker(&waker)).is_pending() {
            core.tasks.borrow_mut()[id] = Some(task);
        }
    }

    struct JoinState<T> {
        value: Option<T>,
        waiter: Option<Waker>,
    }

    /// The output of a spawned task, once it finishes.
    pub struct JoinHandle<T>(Rc<RefCell<JoinState<T>>>);

    impl<T> Future for JoinHandle<T> {
        type Output = T;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
            let mut state = self.0.borrow_mut();
            match state.value.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    state.waiter = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    /// Spawn a task on the running `block_on`.
    ///
    /// # Panics
    /// Outside `block_on`, or past `TASKS_MAX` tasks.
    pub fn spawn<F: Future + 'static>(fut: F) -> JoinHandle<F::Output> {
        let core = core();
        let state = Rc::new(RefCell::new(JoinState { value: None, waiter: None }));
        let done = Rc::clone(&state);
        let task: LocalTask = Box::pin(async move {
            let v = fut.await;
            let waiter = {
                let mut s = done.borrow_mut();
                s.value = Some(v);
                s.waiter.take()
            };
            if let Some(w) = waiter {
                w.wake();
            }
        });
        let mut tasks = core.tasks.borrow_mut();
        assert!(tasks.len() < TASKS_MAX, "more than {TASKS_MAX} tasks");
        tasks.push(Some(task));
        let id = tasks.len() - 1;
        core.ready.lock().expect("invariant: ready set never poisoned").insert(id);
        JoinHandle(state)
    }

    /// Virtual time since `block_on` started.
    #[must_use]
    pub fn elapsed() -> Duration {
        core().now.get()
    }

    /// A virtual-time sleep.
    pub struct Sleep {
        deadline: Duration,
        timer: Option<(Duration, u64)>,
    }

    /// Sleep `d` of virtual time (at least `SLEEP_MIN`).
    #[must_use]
    pub fn sleep(d: Duration) -> Sleep {
        Sleep { deadline: elapsed() + d.max(SLEEP_MIN), timer: None }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let core = core();
            if core.now.get() >= self.deadline {
                return Poll::Ready(());
            }
            let key = match self.timer {
                Some(key) => key,
                None => {
                    let seq = core.timer_seq.get();
                    core.timer_seq.set(seq + 1);
                    (self.deadline, seq)
                }
            };
            self.timer = Some(key);
            core.timers.borrow_mut().insert(key, cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Three tasks sleeping different amounts log their wake-ups; the log is a function of
    /// the seed, and virtual time reaches the longest sleep.
    fn interleaving(executor: Executor, seed: u64) -> (Vec<(u32, u128)>, Duration) {
        block_on(executor, seed, async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut handles = Vec::new();
            for t in 0..3u32 {
                let log = Rc::clone(&log);
                handles.push(spawn(async move {
                    for _ in 0..4 {
                        sleep(Duration::from_millis(u64::from(t) + 1)).await;
                        log.borrow_mut().push((t, elapsed().as_millis()));
                    }
                    t
                }));
            }
            for (t, h) in handles.into_iter().enumerate() {
                assert_eq!(h.join().await as usize, t);
            }
            let out = log.borrow().clone();
            (out, elapsed())
        })
    }

    #[test]
    fn fallback_is_deterministic_and_keeps_virtual_time() {
        let (a, end) = interleaving(Executor::Fallback, 7);
        assert_eq!(interleaving(Executor::Fallback, 7).0, a);
        assert_eq!(a.len(), 12);
        assert!(end >= Duration::from_millis(12), "{end:?}");
        assert!(end < Duration::from_secs(1), "{end:?}");
        let seeds_differ = (0..20).any(|s| interleaving(Executor::Fallback, s).0 != a);
        assert!(seeds_differ, "the seed never changed the order of simultaneous wake-ups");
    }

    #[test]
    fn default_executor_is_deterministic() {
        let (a, end) = interleaving(Executor::DEFAULT, 3);
        assert_eq!(interleaving(Executor::DEFAULT, 3).0, a);
        assert!(end >= Duration::from_millis(12), "{end:?}");
    }

    #[test]
    #[should_panic(expected = "deadlock")]
    fn fallback_reports_a_deadlock() {
        block_on(Executor::Fallback, 0, std::future::pending::<()>());
    }
}
