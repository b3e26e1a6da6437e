//! Host tests: the executor driven by a fake clock (`turn(now, io)` by hand).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use std::vec::Vec;

use super::*;

const MS: u64 = 1_000_000;

/// An executor whose `notify` calls are counted.
fn executor(max_tasks: usize) -> (Executor, Arc<AtomicUsize>) {
    let notified = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&notified);
    let notify = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (Executor::new(Limits { max_tasks }, notify), notified)
}

fn turn(executor: &mut Executor, now: u64) -> Turn {
    executor.turn(now, &mut |_| {})
}

/// Turns at `now` until nothing is ready.
fn settle(executor: &mut Executor, now: u64) {
    for _ in 0..100 {
        if !turn(executor, now).more_ready {
            return;
        }
    }
    panic!("executor did not settle");
}

/// Spawns a task that awaits `join` and stores the result in the returned cell.
fn spawn_collect<T: 'static>(
    handle: &Handle,
    join: JoinHandle<T>,
) -> Rc<RefCell<Option<Result<T, Cancelled>>>> {
    let slot = Rc::new(RefCell::new(None));
    let out = Rc::clone(&slot);
    handle
        .spawn(async move {
            *out.borrow_mut() = Some(join.await);
        })
        .unwrap()
        .detach();
    slot
}

/// Drops a [`JoinHandle`] on purpose (it is `#[must_use]`): detaches the task.
trait Detach {
    fn detach(self);
}

impl<T> Detach for JoinHandle<T> {
    fn detach(self) {
        drop(self);
    }
}

/// Sets its flag when dropped.
struct DropGuard(Rc<Cell<bool>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn log() -> Rc<RefCell<Vec<String>>> {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Rc<RefCell<Vec<String>>>, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

/// Pending until `flag` is set; its waker is published for other threads.
struct Flag {
    flag: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for Flag {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.flag.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }
}

#[test]
fn spawn_and_join_returns_the_value() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let join = handle.spawn(async { 6 * 7 }).unwrap();
    let result = spawn_collect(&handle, join);
    let first = turn(&mut executor, 0);
    assert_eq!(first.ran, 2);
    assert!(!first.more_ready);
    assert_eq!(*result.borrow(), Some(Ok(42)));
    assert_eq!(executor.stats().tasks_alive, 0);
}

#[test]
fn tasks_interleave_at_await_points() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let log = log();
    for name in ["a", "b"] {
        let log = Rc::clone(&log);
        handle
            .spawn(async move {
                for step in 0..3 {
                    push(&log, format!("{name}{step}"));
                    yield_now().await;
                }
            })
            .unwrap()
            .detach();
    }
    settle(&mut executor, 0);
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn a_self_waking_task_starves_neither_other_tasks_nor_io() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let spins = Rc::new(Cell::new(0u32));
    let counter = Rc::clone(&spins);
    let spinner = handle
        .spawn(async move {
            loop {
                counter.set(counter.get() + 1);
                yield_now().await;
            }
        })
        .unwrap();
    let other_steps = Rc::new(Cell::new(0u32));
    let steps = Rc::clone(&other_steps);
    handle
        .spawn(async move {
            for _ in 0..5 {
                steps.set(steps.get() + 1);
                yield_now().await;
            }
        })
        .unwrap()
        .detach();
    let mut io_calls = 0;
    for round in 1..=10u32 {
        let turn = executor.turn(0, &mut |_| io_calls += 1);
        assert!(turn.more_ready, "the spinner is always ready again");
        assert!(turn.ran <= 2, "each task is polled at most once per turn");
        assert_eq!(spins.get(), round, "one poll of the spinner per turn");
    }
    assert_eq!(io_calls, 10);
    assert_eq!(other_steps.get(), 5);
    spinner.abort();
    turn(&mut executor, 0);
    assert_eq!(executor.stats().tasks_alive, 0);
}

#[test]
fn sleep_wakes_exactly_in_its_deadline_turn() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    turn(&mut executor, 100 * MS);
    let woke_at = Rc::new(Cell::new(None));
    let out = Rc::clone(&woke_at);
    let inner = handle.clone();
    handle
        .spawn(async move {
            inner.sleep(Duration::from_millis(10)).await;
            out.set(Some(inner.now_ns()));
        })
        .unwrap()
        .detach();
    let first = turn(&mut executor, 100 * MS);
    assert_eq!(first.next_timer_ns, Some(110 * MS));
    assert_eq!(executor.stats().timers_pending, 1);
    let early = turn(&mut executor, 110 * MS - 1);
    assert_eq!(early.ran, 0);
    assert_eq!(woke_at.get(), None);
    let due = turn(&mut executor, 110 * MS);
    assert_eq!(due.ran, 1);
    assert_eq!(woke_at.get(), Some(110 * MS));
    assert_eq!(due.next_timer_ns, None);
    assert_eq!(executor.stats().timers_pending, 0);
}

#[test]
fn next_timer_is_the_earliest_deadline() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    for deadline in [300, 100, 200] {
        let inner = handle.clone();
        handle.spawn(async move { inner.sleep_until(deadline).await }).unwrap().detach();
    }
    assert_eq!(turn(&mut executor, 0).next_timer_ns, Some(100));
    assert_eq!(turn(&mut executor, 150).next_timer_ns, Some(200));
    assert_eq!(turn(&mut executor, 250).next_timer_ns, Some(300));
    assert_eq!(turn(&mut executor, 300).next_timer_ns, None);
}

#[test]
fn time_never_goes_back() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    turn(&mut executor, 50);
    turn(&mut executor, 10);
    assert_eq!(handle.now_ns(), 50);
}

#[test]
fn dropping_a_sleep_removes_its_timer() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let inner = handle.clone();
    let join = handle
        .spawn(async move {
            let sleep = inner.sleep_until(1_000);
            // Poll it once so it registers, then drop it.
            let mut sleep = std::pin::pin!(sleep);
            std::future::poll_fn(|cx| {
                assert!(sleep.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
        })
        .unwrap();
    let result = spawn_collect(&handle, join);
    settle(&mut executor, 0);
    assert_eq!(*result.borrow(), Some(Ok(())));
    assert_eq!(executor.stats().timers_pending, 0);
    assert_eq!(turn(&mut executor, 0).next_timer_ns, None);
}

#[test]
fn timeout_elapses_and_drops_the_inner_future() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let dropped = Rc::new(Cell::new(false));
    let guard = DropGuard(Rc::clone(&dropped));
    let inner = handle.clone();
    let join = handle
        .spawn(async move {
            let never = async move {
                let _guard = guard;
                std::future::pending::<u32>().await
            };
            let result = inner.timeout(Duration::from_nanos(100), never).await;
            (result, inner.now_ns())
        })
        .unwrap();
    let result = spawn_collect(&handle, join);
    assert_eq!(turn(&mut executor, 0).next_timer_ns, Some(100));
    assert!(!dropped.get());
    turn(&mut executor, 99);
    assert!(!dropped.get());
    turn(&mut executor, 100);
    assert!(dropped.get(), "the inner future is dropped when the timeout elapses");
    settle(&mut executor, 100);
    assert_eq!(*result.borrow(), Some(Ok((Err(Elapsed), 100))));
    assert_eq!(executor.stats().timers_pending, 0);
}

#[test]
fn timeout_that_completes_in_time_is_ok() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let inner = handle.clone();
    let join = handle
        .spawn(async move {
            let sleeper = inner.clone();
            let work = async move {
                sleeper.sleep_until(50).await;
                "done"
            };
            inner.timeout_at(100, work).await
        })
        .unwrap();
    let result = spawn_collect(&handle, join);
    turn(&mut executor, 0);
    turn(&mut executor, 50);
    settle(&mut executor, 50);
    assert_eq!(*result.borrow(), Some(Ok(Ok("done"))));
    assert_eq!(executor.stats().timers_pending, 0, "the timeout's own timer is removed");
}

#[test]
fn abort_drops_the_task_in_the_close_phase_and_resolves_cancelled() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let dropped = Rc::new(Cell::new(false));
    let polls = Rc::new(Cell::new(0));
    let guard = DropGuard(Rc::clone(&dropped));
    let counter = Rc::clone(&polls);
    let inner = handle.clone();
    let victim = handle
        .spawn(async move {
            let _guard = guard;
            counter.set(counter.get() + 1);
            inner.sleep_until(5).await;
            counter.set(counter.get() + 1);
        })
        .unwrap();
    turn(&mut executor, 0);
    assert_eq!(polls.get(), 1);

    // Cancelled from inside a task: later polls of the same phase still see
    // the victim alive; it is gone when the turn returns.
    let victim = Rc::new(victim);
    let seen_alive_after_abort = Rc::new(Cell::new(None));
    let (aborter_victim, seen) = (Rc::clone(&victim), Rc::clone(&seen_alive_after_abort));
    handle.spawn(async move { aborter_victim.abort() }).unwrap().detach();
    let witness_dropped = Rc::clone(&dropped);
    handle.spawn(async move { seen.set(Some(!witness_dropped.get())) }).unwrap().detach();
    assert!(!dropped.get());
    // The victim's timer fires in this turn's phase 1, after the other two
    // were spawned: all three are in the snapshot, the victim last.
    turn(&mut executor, 5);
    assert_eq!(seen_alive_after_abort.get(), Some(true), "not dropped during phase 3");
    assert!(dropped.get(), "dropped in the close phase of the same turn");
    assert_eq!(polls.get(), 1, "the victim, ready again, was not polled after abort");
    assert!(victim.is_finished());
    let victim = Rc::try_unwrap(victim).unwrap();
    let result = spawn_collect(&handle, victim);
    settle(&mut executor, 5);
    assert_eq!(*result.borrow(), Some(Err(Cancelled)));
    assert_eq!(executor.stats().tasks_cancelled, 1);
}

#[test]
fn abort_between_turns_notifies_and_closes_without_polling() {
    let (mut executor, notified) = executor(16);
    let handle = executor.handle();
    let polls = Rc::new(Cell::new(0));
    let counter = Rc::clone(&polls);
    let join = handle
        .spawn(async move {
            loop {
                counter.set(counter.get() + 1);
                yield_now().await;
            }
        })
        .unwrap();
    turn(&mut executor, 0);
    let before = notified.load(Ordering::SeqCst);
    join.abort();
    assert_eq!(notified.load(Ordering::SeqCst), before + 1, "the loop thread is told to turn");
    assert!(!join.is_finished());
    turn(&mut executor, 0);
    assert_eq!(polls.get(), 1);
    assert!(join.is_finished());
}

#[test]
fn abort_after_completion_keeps_the_output() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let join = handle.spawn(async { 7 }).unwrap();
    turn(&mut executor, 0);
    assert!(join.is_finished());
    join.abort();
    let result = spawn_collect(&handle, join);
    settle(&mut executor, 0);
    assert_eq!(*result.borrow(), Some(Ok(7)));
    assert_eq!(executor.stats().tasks_cancelled, 0);
}

#[test]
fn dropping_a_join_handle_detaches_the_task() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let done = Rc::new(Cell::new(false));
    let flag = Rc::clone(&done);
    let inner = handle.clone();
    let join = handle
        .spawn(async move {
            inner.sleep_until(10).await;
            flag.set(true);
        })
        .unwrap();
    turn(&mut executor, 0);
    drop(join);
    turn(&mut executor, 10);
    assert!(done.get());
    assert_eq!(executor.stats().tasks_alive, 0);
}

/// A task that spawns `depth` levels of nested scopes, each level's task
/// holding a drop guard and pending forever.
fn nested(
    handle: Handle,
    depth: usize,
    guards: Rc<RefCell<Vec<Rc<Cell<bool>>>>>,
) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(async move {
        let flag = Rc::new(Cell::new(false));
        guards.borrow_mut().push(Rc::clone(&flag));
        let _guard = DropGuard(flag);
        let _scope = if depth > 0 {
            let scope = handle.scope();
            scope.spawn(nested(handle.clone(), depth - 1, guards)).unwrap().detach();
            Some(scope)
        } else {
            None
        };
        std::future::pending::<()>().await;
    })
}

#[test]
fn dropping_a_scope_cancels_children_and_grandchildren() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let guards = Rc::new(RefCell::new(Vec::new()));
    let scope = handle.scope();
    let child = scope.spawn(nested(handle.clone(), 2, Rc::clone(&guards))).unwrap();
    settle(&mut executor, 0);
    assert_eq!(guards.borrow().len(), 3, "child, grandchild, great-grandchild");
    assert_eq!(executor.stats().tasks_alive, 3);
    drop(scope);
    assert!(guards.borrow().iter().all(|guard| !guard.get()), "nothing dropped before the close phase");
    let turn = turn(&mut executor, 0);
    assert_eq!(turn.ran, 0, "cancelled tasks are not polled");
    assert!(guards.borrow().iter().all(|guard| guard.get()), "the whole tree is dropped in one close phase");
    assert_eq!(executor.stats().tasks_alive, 0);
    assert_eq!(executor.stats().tasks_cancelled, 3);
    assert!(child.is_finished());
}

#[test]
fn cancelling_a_scope_reaches_grandchildren_even_if_their_scope_escaped() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let escaped: Rc<RefCell<Option<Scope>>> = Rc::new(RefCell::new(None));
    let grandchild_dropped = Rc::new(Cell::new(false));
    let scope = handle.scope();
    let (inner, out, flag) = (handle.clone(), Rc::clone(&escaped), Rc::clone(&grandchild_dropped));
    scope
        .spawn(async move {
            let nested = inner.scope();
            nested
                .spawn(async move {
                    let _guard = DropGuard(flag);
                    std::future::pending::<()>().await
                })
                .unwrap()
                .detach();
            *out.borrow_mut() = Some(nested); // the nested scope outlives its task
            std::future::pending::<()>().await
        })
        .unwrap()
        .detach();
    settle(&mut executor, 0);
    scope.cancel();
    assert!(scope.is_cancelled());
    assert!(escaped.borrow().as_ref().unwrap().is_cancelled());
    turn(&mut executor, 0);
    assert!(grandchild_dropped.get());
    assert!(matches!(scope.spawn(async {}), Err(SpawnError::ScopeCancelled)));
}

#[test]
fn join_all_waits_for_every_child() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let joined_at = Rc::new(Cell::new(None));
    let (inner, out) = (handle.clone(), Rc::clone(&joined_at));
    handle
        .spawn(async move {
            let scope = inner.scope();
            for deadline in [30, 10, 20] {
                let sleeper = inner.clone();
                scope.spawn(async move { sleeper.sleep_until(deadline).await }).unwrap().detach();
            }
            assert_eq!(scope.len(), 3);
            scope.join_all().await;
            assert!(scope.is_empty());
            out.set(Some(inner.now_ns()));
        })
        .unwrap()
        .detach();
    for now in [0, 10, 20, 29] {
        settle(&mut executor, now);
        assert_eq!(joined_at.get(), None, "not all children done at {now}");
    }
    settle(&mut executor, 30);
    assert_eq!(joined_at.get(), Some(30));
}

#[test]
fn join_all_completes_once_cancelled_children_are_dropped() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let scope = Rc::new(handle.scope());
    for _ in 0..2 {
        scope.spawn(std::future::pending::<()>()).unwrap().detach();
    }
    let joined = Rc::new(Cell::new(false));
    let (waiting_scope, flag) = (Rc::clone(&scope), Rc::clone(&joined));
    handle
        .spawn(async move {
            waiting_scope.join_all().await;
            flag.set(true);
        })
        .unwrap()
        .detach();
    settle(&mut executor, 0);
    assert!(!joined.get());
    scope.cancel();
    settle(&mut executor, 0);
    assert!(joined.get());
}

#[test]
fn max_tasks_is_enforced_and_slots_free_after_close() {
    let (mut executor, _) = executor(2);
    let handle = executor.handle();
    let inner = handle.clone();
    let first = handle.spawn(async move { inner.sleep_until(10).await }).unwrap();
    let second = handle.spawn(async {}).unwrap();
    assert!(matches!(handle.spawn(async {}), Err(SpawnError::TooManyTasks)));
    turn(&mut executor, 0);
    assert!(second.is_finished());
    assert!(handle.spawn(async {}).is_ok(), "the finished task's slot is free after the close phase");
    assert!(matches!(handle.spawn(async {}), Err(SpawnError::TooManyTasks)));
    first.abort();
    turn(&mut executor, 0);
    assert_eq!(executor.stats().tasks_alive, 0);
    assert!(handle.spawn(async {}).is_ok());
}

#[test]
fn a_waker_fired_from_another_thread_notifies_and_readies_the_task() {
    let (mut executor, notified) = executor(16);
    let handle = executor.handle();
    let flag = Arc::new(AtomicBool::new(false));
    let waker = Arc::new(Mutex::new(None));
    let done = Rc::new(Cell::new(false));
    let (future, out) = (Flag { flag: Arc::clone(&flag), waker: Arc::clone(&waker) }, Rc::clone(&done));
    handle
        .spawn(async move {
            future.await;
            out.set(true);
        })
        .unwrap()
        .detach();
    let first = turn(&mut executor, 0);
    assert!(!first.more_ready);
    let before = notified.load(Ordering::SeqCst);

    let waker = waker.lock().unwrap().take().unwrap();
    std::thread::spawn(move || {
        flag.store(true, Ordering::SeqCst);
        waker.wake_by_ref();
        waker.wake(); // a second wake of a ready task changes nothing
    })
    .join()
    .unwrap();

    assert_eq!(notified.load(Ordering::SeqCst), before + 1);
    assert_eq!(executor.stats().ready, 1);
    assert_eq!(executor.stats().wakeups, 1);
    let next = turn(&mut executor, 0);
    assert_eq!(next.ran, 1);
    assert!(done.get());
}

#[test]
fn a_wake_while_the_queue_is_locked_is_found_by_a_rescan() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let flag = Arc::new(AtomicBool::new(false));
    let waker = Arc::new(Mutex::new(None));
    let done = Rc::new(Cell::new(false));
    let (future, out) = (Flag { flag: Arc::clone(&flag), waker: Arc::clone(&waker) }, Rc::clone(&done));
    handle
        .spawn(async move {
            future.await;
            out.set(true);
        })
        .unwrap()
        .detach();
    turn(&mut executor, 0);
    flag.store(true, Ordering::SeqCst);
    {
        // As if the interrupted loop thread held the queue: the waker must not spin.
        let _held = executor.shared.queue_for_test().lock();
        waker.lock().unwrap().take().unwrap().wake();
    }
    let next = turn(&mut executor, 0);
    assert_eq!(next.ran, 1);
    assert!(done.get());
}

/// Logs its wake, then wakes `inner`: shows when a timer fires.
struct LoggingWaker {
    log: Arc<Mutex<Vec<String>>>,
    inner: Waker,
}

impl std::task::Wake for LoggingWaker {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push("timer fired".into());
        self.inner.wake_by_ref();
    }
}

#[test]
fn phases_run_timers_then_io_then_tasks_then_close() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (inner, task_log) = (handle.clone(), Arc::clone(&log));
    handle
        .spawn(async move {
            let sleep = inner.sleep_until(10);
            let mut sleep = std::pin::pin!(sleep);
            std::future::poll_fn(|cx| {
                let waker = LoggingWaker { log: Arc::clone(&task_log), inner: cx.waker().clone() };
                let ready = sleep.as_mut().poll(&mut Context::from_waker(&Waker::from(Arc::new(waker))));
                let state = if ready.is_ready() { "woke" } else { "waits" };
                task_log.lock().unwrap().push(format!("task {state}"));
                ready
            })
            .await;
            let close_log = Arc::clone(&task_log);
            inner.on_close(move || close_log.lock().unwrap().push("close".into()));
        })
        .unwrap()
        .detach();
    let io_log = Arc::clone(&log);
    let mut io = |now: u64| io_log.lock().unwrap().push(format!("io {now}"));
    executor.turn(0, &mut io);
    executor.turn(10, &mut io);
    assert_eq!(*log.lock().unwrap(), ["io 0", "task waits", "timer fired", "io 10", "task woke", "close"]);
}

#[test]
fn close_callbacks_run_after_the_close_phase_drops_tasks() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    let log = log();
    let (task_log, inner) = (Rc::clone(&log), handle.clone());
    let victim = handle
        .spawn(async move {
            struct Logged(Rc<RefCell<Vec<String>>>);
            impl Drop for Logged {
                fn drop(&mut self) {
                    push(&self.0, "victim dropped");
                }
            }
            let _logged = Logged(task_log);
            std::future::pending::<()>().await
        })
        .unwrap();
    turn(&mut executor, 0);
    let callback_log = Rc::clone(&log);
    inner.on_close(move || push(&callback_log, "callback"));
    victim.abort();
    let turn = turn(&mut executor, 0);
    assert_eq!(*log.borrow(), ["victim dropped", "callback"]);
    assert!(!turn.more_ready);
}

#[test]
fn dropping_the_executor_drops_tasks_and_resolves_handles() {
    let (executor, _) = executor(16);
    let handle = executor.handle();
    let dropped = Rc::new(Cell::new(false));
    let guard = DropGuard(Rc::clone(&dropped));
    let join = handle
        .spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        })
        .unwrap();
    drop(executor);
    assert!(dropped.get());
    assert!(join.is_finished());
    let mut join = std::pin::pin!(join);
    let poll = join.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert_eq!(poll, Poll::Ready(Err(Cancelled)));
    assert!(matches!(handle.spawn(async {}), Err(SpawnError::ShutDown)));
}

#[test]
fn stats_counters_move() {
    let (mut executor, _) = executor(16);
    let handle = executor.handle();
    assert_eq!(executor.stats(), ExecutorStats::default());
    let inner = handle.clone();
    handle
        .spawn(async move {
            yield_now().await;
            inner.sleep_until(5).await;
        })
        .unwrap()
        .detach();
    let stats = executor.stats();
    assert_eq!((stats.tasks_alive, stats.tasks_spawned, stats.ready), (1, 1, 1));
    turn(&mut executor, 0); // poll 1: yields
    turn(&mut executor, 0); // poll 2: sleeps
    let stats = executor.stats();
    assert_eq!((stats.polls, stats.wakeups, stats.timers_pending, stats.ready, stats.turns), (2, 1, 1, 0, 2));
    turn(&mut executor, 5); // poll 3: done
    let stats = executor.stats();
    assert_eq!(
        (stats.tasks_alive, stats.polls, stats.wakeups, stats.timers_pending, stats.turns),
        (0, 3, 2, 0, 3)
    );
}
