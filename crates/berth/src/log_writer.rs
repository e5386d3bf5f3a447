//! A log writer that never blocks serving.
//!
//! Log lines are appended to a bounded in-memory buffer; one thread writes
//! the buffer to the sink (stderr, a file, a pipe) in batches, every few
//! milliseconds or as soon as a batch is large, so a busy server makes one
//! `write` per batch instead of one per line, and no request waits for the
//! sink. When the sink does not keep up (a full pipe nobody reads, a
//! stalled disk) and the buffer is full, new lines are dropped and counted
//! in `berth_log_lines_dropped_total` (see
//! [`crate::metrics::log_line_dropped`]). Lines that must not be lost (the
//! `Serving HTTP on …` banner others wait for) go through
//! [`LogWriter::write_line_blocking`], which is never dropped and keeps its
//! place in order; [`LogWriter::flush`] waits until everything written
//! before it has reached the sink (call it before exit).
//!
//! A [`LogWriter`] is an [`std::io::Write`]: a `tracing-subscriber` `fmt`
//! layer takes it with `.with_writer(move || writer.clone())`; each event
//! is one `write` call. Each `write` is kept whole or dropped whole, so
//! write a line in one call (`write_all` of a formatted buffer, not
//! `write!`, which writes piece by piece).
//!
//! ```
//! use std::io::Write;
//! let mut log = berth::log_writer::LogWriter::spawn(std::io::sink(), 1 << 20);
//! log.write_all(b"one line\n").unwrap();
//! log.flush().unwrap();
//! ```

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Bytes buffered before the writer starts dropping lines (4 MiB, some
/// 20 000 typical access lines).
pub const DEFAULT_BUFFER_BYTES: usize = 4 << 20;

/// Longest a line waits in the buffer before it is written.
const WRITE_EVERY: Duration = Duration::from_millis(5);

/// A batch this large is written at once rather than at the next tick.
const EAGER_BYTES: usize = 64 * 1024;

struct State {
    /// Lines not yet handed to the sink.
    pending: Vec<u8>,
    /// Bumped by each [`LogWriter::flush`] and blocking write.
    requested: u64,
    /// The last request the thread has written out.
    written: u64,
    /// Set when every handle is gone.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread (a large batch, a flush, closing).
    wake: Condvar,
    /// Wakes those waiting in [`LogWriter::flush`].
    done: Condvar,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
    /// Closes the buffer when the last handle goes.
    _owner: Arc<Owner>,
}

/// Tells the thread to finish once every handle is dropped.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_all();
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("limit", &self.shared.limit)
            .finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the thread that writes to `sink`, buffering at most
    /// `buffer_bytes` (at least one line is always taken into an empty
    /// buffer). The thread ends when every handle is dropped.
    pub fn spawn(sink: impl Write + Send + 'static, buffer_bytes: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(EAGER_BYTES),
                requested: 0,
                written: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            limit: buffer_bytes,
        });
        let thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-log".into())
            .spawn(move || drain(&thread, sink));
        if let Err(err) = spawned {
            // Nothing will be written: say so once, where it can be seen.
            eprintln!("berth: could not start the log writer thread: {err}");
        }
        Self {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// Queues `line` (a newline is added if missing) whatever the buffer
    /// holds, in order with the log, and waits until it is written.
    pub fn write_line_blocking(&self, line: &str) {
        let mut state = self.shared.lock();
        state.pending.extend_from_slice(line.as_bytes());
        if !line.ends_with('\n') {
            state.pending.push(b'\n');
        }
        self.wait_written(state);
    }

    /// Asks the thread to write everything so far and waits until it has
    /// (for as long as the sink takes: bound the wait from outside if the
    /// sink may block for good).
    fn wait_written(&self, mut state: MutexGuard<'_, State>) {
        state.requested += 1;
        let target = state.requested;
        self.shared.wake.notify_one();
        while state.written < target && !state.closed {
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Write for LogWriter {
    /// Appends `buf` without waiting; when the buffer is full the line is
    /// dropped and counted. Always reports the whole buffer written: a
    /// logger must not retry or fail the request that logged.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        let held = state.pending.len();
        if held > 0 && held + buf.len() > self.shared.limit {
            drop(state);
            crate::metrics::log_line_dropped();
            return Ok(buf.len());
        }
        state.pending.extend_from_slice(buf);
        let eager = held < EAGER_BYTES && state.pending.len() >= EAGER_BYTES;
        drop(state);
        if eager {
            self.shared.wake.notify_one();
        }
        Ok(buf.len())
    }

    /// Waits until every line written before this call has reached the
    /// sink.
    fn flush(&mut self) -> std::io::Result<()> {
        let state = self.shared.lock();
        self.wait_written(state);
        Ok(())
    }
}

/// The writer thread: every tick (or when woken), takes what is buffered
/// and writes it, outside the lock.
fn drain(shared: &Shared, mut sink: impl Write) {
    let mut batch = Vec::with_capacity(EAGER_BYTES);
    let mut state = shared.lock();
    loop {
        if state.pending.is_empty() && state.written == state.requested {
            if state.closed {
                return;
            }
            state = shared
                .wake
                .wait_timeout(state, WRITE_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        std::mem::swap(&mut state.pending, &mut batch);
        let requested = state.requested;
        drop(state);
        let _ = sink.write_all(&batch);
        let _ = sink.flush();
        batch.clear();
        if batch.capacity() > 4 * EAGER_BYTES {
            batch.shrink_to(EAGER_BYTES);
        }
        state = shared.lock();
        state.written = requested;
        shared.done.notify_all();
        if state.pending.len() < EAGER_BYTES && !state.closed && state.written == state.requested {
            // Let lines gather into the next batch.
            state = shared
                .wake
                .wait_timeout(state, WRITE_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that blocks every write until released, then records.
    #[derive(Clone)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.open;
            let mut guard = open.lock().unwrap_or_else(PoisonError::into_inner);
            while !*guard {
                guard = changed.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
            self.written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn dropped() -> u64 {
        crate::metrics::Metrics::new()
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("berth_log_lines_dropped_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_blocked_sink_drops_and_counts_instead_of_blocking() {
        let gate = Gate {
            open: Arc::default(),
            written: Arc::default(),
        };
        // Room for ten 8-byte lines.
        let mut log = LogWriter::spawn(gate.clone(), 80);
        let before = dropped();
        let started = std::time::Instant::now();
        for i in 0..1000 {
            log.write_all(format!("line {i:03}\n").as_bytes()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes waited for the sink"
        );
        // The thread may hold one batch (blocked in the sink), the buffer
        // ten more lines: the rest is dropped.
        let counted = dropped() - before;
        assert!(counted >= 1000 - 20, "{counted} dropped");
        *gate.open.0.lock().unwrap() = true;
        gate.open.1.notify_all();
        log.write_line_blocking("banner");
        log.flush().unwrap();
        let written = String::from_utf8(gate.written.lock().unwrap().clone()).unwrap();
        assert!(written.starts_with("line 000\n"), "{written}");
        assert!(written.ends_with("banner\n"), "{written}");
    }

    #[test]
    fn lines_arrive_whole_and_in_order_when_the_sink_keeps_up() {
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let written = Arc::new(Mutex::new(Vec::new()));
        let log = LogWriter::spawn(Shared(written.clone()), DEFAULT_BUFFER_BYTES);
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let mut log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        log.write_all(format!("{t}:{i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        log.write_line_blocking("last");
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4001);
        assert_eq!(lines.last(), Some(&"last"));
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{t}:")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>(), "thread {t} in order");
        }
    }
}
