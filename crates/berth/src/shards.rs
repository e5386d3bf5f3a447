//! Connection threads: the front-end's option to serve each connection on
//! one of N threads, each running a single-threaded tokio runtime, for the
//! connection's whole life (`ServerConfig::connection_threads`).
//!
//! On tokio's work-stealing runtime a request's tasks (the connection, a
//! wasi:http@0.3 instance's worker, the instance's body streams) land on
//! whichever thread woke them, and every hand-off between two threads parks
//! one and wakes the other. On a connection thread everything a request
//! starts stays on that thread: the connection's socket is registered with
//! that thread's reactor, tasks it spawns (HTTP/2 streams, 0.3 instance
//! workers, outgoing connections) run there, and 0.3 dispatch prefers an
//! instance whose worker lives on the same thread. The accept loop stays on
//! the caller's runtime and hands each accepted socket to the thread with
//! the fewest open connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// One connection thread: its runtime's handle, a count of the
/// connections it serves, and the sender whose drop ends it.
struct Shard {
    runtime: Handle,
    connections: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

/// The connection threads of one front-end. Dropping it ends them: tasks
/// still on their runtimes are cancelled (the front-end drains its
/// connections first).
pub(crate) struct Shards {
    shards: Vec<Shard>,
}

/// A connection's place on a shard: the runtime to spawn it on, and a
/// guard that counts it there until dropped.
pub(crate) struct Placement {
    /// The runtime of the connection's thread.
    pub(crate) runtime: Handle,
    /// Counts the connection on its thread while it lives.
    pub(crate) guard: ConnectionCount,
}

/// Counts one connection on its thread until dropped.
pub(crate) struct ConnectionCount(Arc<AtomicUsize>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shards {
    /// Starts `threads` connection threads (named `berth-conn-N`).
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let mut shards = Vec::with_capacity(threads);
        for index in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("berth-conn-{index}"))
                .spawn(move || {
                    // Runs until the front-end drops its `Shards`; the
                    // runtime (and whatever is left on it) goes with the
                    // thread.
                    let _ = runtime.block_on(stopped);
                })?;
            shards.push(Shard {
                runtime: handle,
                connections: Arc::new(AtomicUsize::new(0)),
                _stop: stop,
            });
        }
        Ok(Self { shards })
    }

    /// The thread with the fewest open connections (the first of equals),
    /// with the new connection counted there.
    pub(crate) fn place(&self) -> Option<Placement> {
        let shard = self
            .shards
            .iter()
            .min_by_key(|shard| shard.connections.load(Ordering::Acquire))?;
        shard.connections.fetch_add(1, Ordering::AcqRel);
        Some(Placement {
            runtime: shard.runtime.clone(),
            guard: ConnectionCount(shard.connections.clone()),
        })
    }

    /// Open connections per thread, in thread order.
    #[cfg(test)]
    fn loads(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.connections.load(Ordering::Acquire))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_loaded_thread() {
        let shards = Shards::start(3).unwrap();
        let a = shards.place().unwrap();
        let b = shards.place().unwrap();
        let c = shards.place().unwrap();
        assert_eq!(shards.loads(), [1, 1, 1]);
        drop(b);
        assert_eq!(shards.loads(), [1, 0, 1]);
        let d = shards.place().unwrap();
        assert_eq!(shards.loads(), [1, 1, 1]);
        drop((a, c, d));
        assert_eq!(shards.loads(), [0, 0, 0]);
    }

    #[test]
    fn tasks_run_on_their_own_thread_until_the_shards_go() {
        let shards = Shards::start(2).unwrap();
        let first = shards.place().unwrap();
        let second = shards.place().unwrap();
        let name = |placement: &Placement| {
            let (tx, rx) = std::sync::mpsc::channel();
            placement.runtime.spawn(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            });
            rx.recv().unwrap()
        };
        assert_eq!(name(&first).as_deref(), Some("berth-conn-0"));
        assert_eq!(name(&second).as_deref(), Some("berth-conn-1"));
        // A task left running is cancelled (its future dropped) when the
        // shards go.
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        first.runtime.spawn(async move {
            let _held = dropped_tx;
            std::future::pending::<()>().await;
        });
        drop(shards);
        assert_eq!(
            dropped_rx.recv_timeout(std::time::Duration::from_secs(5)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
