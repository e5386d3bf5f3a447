//! A log writer that never blocks serving.
//!
//! Log lines go into a bounded queue; one thread writes them to the sink
//! (stderr, a file, a pipe). When the sink does not keep up (a full pipe
//! nobody reads, a stalled disk) and the queue is full, new lines are
//! dropped and counted in `berth_log_lines_dropped_total` (see
//! [`crate::metrics::log_line_dropped`]) rather than holding the request
//! that wrote them. Lines that must not be lost or reordered (the
//! `Serving HTTP on …` banner others wait for) go through
//! [`LogWriter::write_line_blocking`], which waits for room; [`LogWriter::flush`]
//! waits until everything queued has been written (call it before exit).
//!
//! A [`LogWriter`] is an [`std::io::Write`]: a `tracing-subscriber` `fmt`
//! layer takes it with `.with_writer(move || writer.clone())`; each event
//! is one `write` call. Each `write` is queued whole, so write a line in
//! one call (`write_all` of a formatted buffer, not `write!`, which writes
//! piece by piece).
//!
//! ```
//! use std::io::Write;
//! let mut log = berth::log_writer::LogWriter::spawn(std::io::sink(), 1024);
//! log.write_all(b"one line\n").unwrap();
//! log.flush().unwrap();
//! ```

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Lines queued before the writer starts dropping (16 Ki lines, a few MiB
/// of typical access lines).
pub const DEFAULT_QUEUE_LINES: usize = 16 * 1024;

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// A handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    queue: SyncSender<Message>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the thread that writes to `sink`, with room for `queue_lines`
    /// lines (at least 1). The thread ends when every handle is dropped.
    pub fn spawn(sink: impl Write + Send + 'static, queue_lines: usize) -> Self {
        let (queue, lines) = sync_channel(queue_lines.max(1));
        let spawned = std::thread::Builder::new()
            .name("berth-log".into())
            .spawn(move || drain(lines, sink));
        if let Err(err) = spawned {
            // No thread: every line will count as dropped, visibly.
            eprintln!("berth: could not start the log writer thread: {err}");
        }
        Self { queue }
    }

    /// Queues `line` even if that means waiting for room (banners and other
    /// lines that must arrive, in order with the log).
    pub fn write_line_blocking(&self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        if !line.ends_with('\n') {
            bytes.push(b'\n');
        }
        let _ = self.queue.send(Message::Line(bytes));
    }
}

impl Write for LogWriter {
    /// Queues `buf` without waiting; when the queue is full the line is
    /// dropped and counted. Always reports the whole buffer written: a
    /// logger must not retry or fail the request that logged.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.queue.try_send(Message::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                crate::metrics::log_line_dropped();
            }
        }
        Ok(buf.len())
    }

    /// Waits until every line queued before this call has been written.
    fn flush(&mut self) -> std::io::Result<()> {
        let (done, written) = sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = written.recv();
        }
        Ok(())
    }
}

/// The writer thread: writes lines as they come, flushing the sink
/// whenever the queue runs empty.
fn drain(lines: Receiver<Message>, sink: impl Write) {
    let mut sink = std::io::BufWriter::with_capacity(64 * 1024, sink);
    let mut next = lines.recv().ok();
    while let Some(message) = next {
        match message {
            Message::Line(line) => {
                let _ = sink.write_all(&line);
            }
            Message::Flush(done) => {
                let _ = sink.flush();
                let _ = done.send(());
            }
        }
        next = match lines.try_recv() {
            Ok(message) => Some(message),
            Err(_) => {
                let _ = sink.flush();
                lines.recv().ok()
            }
        };
    }
    let _ = sink.flush();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A sink that blocks every write until released, then records.
    #[derive(Clone)]
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.open;
            let mut guard = open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while !*guard {
                guard = changed
                    .wait(guard)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            self.written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_sink_drops_and_counts_instead_of_blocking() {
        let gate = Gate {
            open: Arc::default(),
            written: Arc::default(),
        };
        let mut log = LogWriter::spawn(gate.clone(), 4);
        let before = crate::metrics::Metrics::new().encode();
        let dropped = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("berth_log_lines_dropped_total "))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let started = std::time::Instant::now();
        for i in 0..1000 {
            log.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "writes waited for the sink"
        );
        let after = crate::metrics::Metrics::new().encode();
        // The thread holds one line, the queue four more: the rest dropped.
        let counted = dropped(&after).unwrap() - dropped(&before).unwrap();
        assert!(counted >= 1000 - 6, "{counted} dropped");
        *gate.open.0.lock().unwrap() = true;
        gate.open.1.notify_all();
        log.write_line_blocking("banner");
        log.flush().unwrap();
        let written = String::from_utf8(gate.written.lock().unwrap().clone()).unwrap();
        assert!(written.starts_with("line 0\n"), "{written}");
        assert!(written.ends_with("banner\n"), "{written}");
    }

    #[test]
    fn lines_arrive_in_order_when_the_sink_keeps_up() {
        let written = Arc::new(Mutex::new(Vec::new()));
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
        let mut log = LogWriter::spawn(Shared(written.clone()), DEFAULT_QUEUE_LINES);
        for i in 0..100 {
            log.write_all(format!("{i}\n").as_bytes()).unwrap();
        }
        log.write_line_blocking("last");
        log.flush().unwrap();
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..100).map(|i| format!("{i}\n")).collect::<String>() + "last\n";
        assert_eq!(text, expected);
    }
}
