//! A future that answers its own wake-ups in place. A connection's task wakes itself as it works:
//! the request's body reaches the handler through a channel the same task fills, and the backend's
//! connection, driven in the same task, hands the answer over through another. tokio runs a task
//! woken during its own poll again as if it had yielded: it queues it and wakes a sleeping worker
//! thread to take it, which finds nothing and sleeps again. At one call at a time that was two
//! futex wake-ups and two needless thread switches per call.
//!
//! Invariants: a wake-up is never lost: one that comes while the future is being polled makes it
//! polled again before `poll` returns (or, past [`AGAIN`] times, reaches the task's waker, so that
//! a future that yields still lets others run); any other reaches the task's waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// How many times in a row a future is polled again before it is left to the scheduler.
const AGAIN: usize = 4;

/// `future`, polled again at once when it woke itself while being polled.
pub fn absorbing<F: Future>(future: F) -> SelfWakes<F> {
    let state = Arc::new(State {
        polling: AtomicBool::new(false),
        woken: AtomicBool::new(false),
        task: AtomicWaker::new(),
    });
    SelfWakes { waker: Waker::from(state.clone()), state, future }
}

pin_project_lite::pin_project! {
    pub struct SelfWakes<F> {
        #[pin]
        future: F,
        state: Arc<State>,
        waker: Waker,
    }
}

struct State {
    /// The future is being polled: wake-ups are noted rather than passed on.
    polling: AtomicBool,
    woken: AtomicBool,
    /// The waker of the task polling the future.
    task: AtomicWaker,
}

impl Wake for State {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl<F: Future> Future for SelfWakes<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        this.state.task.register(cx.waker());
        let mut inner = Context::from_waker(this.waker);
        for _ in 0..AGAIN {
            this.state.polling.store(true, Ordering::SeqCst);
            this.state.woken.store(false, Ordering::SeqCst);
            let polled = this.future.as_mut().poll(&mut inner);
            this.state.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            // Woken while polled (by itself, or by another thread meanwhile): once more, here.
            if !this.state.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A task waker that counts its wake-ups.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakes itself on each of its first `times` polls, then is ready; counts its polls.
    struct WakesItself {
        times: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.times {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn task() -> (Arc<Counted>, Waker) {
        let counted = Arc::new(Counted::default());
        (counted.clone(), Waker::from(counted))
    }

    #[test]
    fn a_future_that_wakes_itself_is_polled_again_in_place() {
        let (counted, waker) = task();
        let mut future = std::pin::pin!(absorbing(WakesItself { times: 2, polls: 0 }));
        assert_eq!(future.as_mut().poll(&mut Context::from_waker(&waker)), Poll::Ready(3));
        assert_eq!(counted.0.load(Ordering::SeqCst), 0, "the task was not woken");
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_left_to_the_scheduler() {
        let (counted, waker) = task();
        let mut future = std::pin::pin!(absorbing(WakesItself { times: usize::MAX, polls: 0 }));
        assert!(future.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(counted.0.load(Ordering::SeqCst), 1, "the task is woken to run again later");
    }

    #[test]
    fn a_wake_up_between_polls_reaches_the_task() {
        let (counted, waker) = task();
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let mut future = std::pin::pin!(absorbing(receiver));
        assert!(future.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(counted.0.load(Ordering::SeqCst), 0);
        sender.send(()).unwrap();
        assert_eq!(counted.0.load(Ordering::SeqCst), 1);
        assert!(future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
    }
}
