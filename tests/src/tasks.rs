//! The tasks a target server spawns, kept in one set so dropping the server
//! stops every one of them: accept loops, connections, delayed answers and
//! HTTP/2 streams alike. Nothing in the harness uses a detached
//! `tokio::spawn`.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::JoinSet;

/// A cloneable handle to a set of tasks that [`TaskSet::close`] aborts.
#[derive(Clone, Default)]
pub(crate) struct TaskSet {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    set: JoinSet<()>,
    /// Set by `close`, so a task that is still running while the owner is
    /// dropped cannot add new tasks behind its back.
    closed: bool,
}

impl TaskSet {
    /// Spawns `task` into the set, unless the set is already closed.
    ///
    /// Must be called from within a Tokio runtime.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        // Reap finished tasks so a long-lived server does not accumulate them.
        while inner.set.try_join_next().is_some() {}
        inner.set.spawn(task);
    }

    /// Aborts every task and refuses new ones.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.set.abort_all();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("TaskSet").field("tasks", &inner.set.len()).field("closed", &inner.closed).finish()
    }
}

/// Lets hyper spawn its HTTP/2 stream tasks into a [`TaskSet`].
#[derive(Clone, Debug)]
pub(crate) struct TaskSetExecutor(pub(crate) TaskSet);

impl<F> hyper::rt::Executor<F> for TaskSetExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        self.0.spawn(task);
    }
}
