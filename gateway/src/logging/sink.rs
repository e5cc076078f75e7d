//! The one writer of every log line: logging threads append whole lines to a shared buffer and
//! one thread (`gateway-log`) writes it to stderr in batches.
//!
//! A busy gateway writes its lines in a few system calls a second instead of one per request,
//! and a logging thread never wakes the writer for an ordinary line while the writer is
//! already awake: after each write it lets lines gather for [`BATCH`]. An idle writer is woken
//! by the first line, so a quiet gateway shows each line at once; a warning or an error wakes it
//! at once too. Nothing is dropped: a logging thread waits while [`MAX_BUFFERED`] bytes are
//! queued. Lines always arrive whole (one append per line), so lines of different threads never
//! interleave. Before the writer starts and after [`Sink::close`], lines are written directly.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer lets lines gather after a write.
const BATCH: Duration = Duration::from_millis(20);
/// Queued bytes at which a logging thread wakes the writer early.
const WAKE_AT: usize = 64 * 1024;
/// Queued bytes at which a logging thread waits for the writer.
const MAX_BUFFERED: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct State {
    queued: Vec<u8>,
    /// The writer waits for a first line (not for a batch to gather).
    writer_idle: bool,
    /// A warning or an error is queued: write without waiting for the batch.
    urgent: bool,
    /// The writer runs (between [`Sink::start`] and [`Sink::close`]).
    running: bool,
}

/// The shared buffer and its writer thread.
#[derive(Default)]
pub(super) struct Sink {
    state: Mutex<State>,
    /// The writer waits on it.
    wake: Condvar,
    /// Logging threads wait on it while the buffer is full.
    drained: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the writer thread (once; a second call changes nothing).
    pub(super) fn start(&'static self) {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_some() {
            return;
        }
        self.lock().running = true;
        let spawned = std::thread::Builder::new().name("gateway-log".into()).spawn(|| self.run(std::io::stderr()));
        match spawned {
            Ok(handle) => *thread = Some(handle),
            Err(_) => self.lock().running = false,
        }
    }

    /// Queues one whole line (or several); `urgent` writes it without waiting for a batch.
    pub(super) fn append(&self, line: &[u8], urgent: bool) {
        let mut state = self.lock();
        while state.running && state.queued.len() >= MAX_BUFFERED {
            state = self.drained.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if !state.running {
            drop(state);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        state.queued.extend_from_slice(line);
        state.urgent |= urgent;
        if state.writer_idle || state.urgent || state.queued.len() >= WAKE_AT {
            state.writer_idle = false;
            self.wake.notify_one();
        }
    }

    /// Writes everything queued and stops the writer; later lines are written directly.
    pub(super) fn close(&self) {
        let handle = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(handle) = handle else { return };
        self.lock().running = false;
        self.wake.notify_one();
        let _ = handle.join();
        self.drained.notify_all();
    }

    fn run(&self, mut out: impl Write) {
        let mut batch = Vec::with_capacity(WAKE_AT);
        let mut state = self.lock();
        loop {
            if state.queued.is_empty() {
                if !state.running {
                    return;
                }
                state.writer_idle = true;
                state = self.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            std::mem::swap(&mut state.queued, &mut batch);
            state.urgent = false;
            drop(state);
            self.drained.notify_all();
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if batch.capacity() > 4 * WAKE_AT {
                batch = Vec::with_capacity(WAKE_AT);
            }
            state = self.lock();
            if state.running && !state.urgent && state.queued.len() < WAKE_AT {
                state = self.wake.wait_timeout(state, BATCH).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
    }
}

/// The process's sink.
pub(super) static SINK: std::sync::LazyLock<Sink> = std::sync::LazyLock::new(Sink::default);

/// What tracing-subscriber writes each formatted record to: one append per record.
pub(super) struct Lines;

/// One record's writer; warnings and errors are urgent.
pub(super) struct LineWriter {
    urgent: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.append(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter { urgent: *meta.level() <= tracing::Level::WARN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    /// A writer that records what it was given, one entry per `write_all`.
    #[derive(Clone, Default)]
    struct Recorder(Arc<StdMutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn started(sink: &'static Sink, out: Recorder) {
        sink.lock().running = true;
        *sink.thread.lock().unwrap() = Some(std::thread::spawn(move || sink.run(out)));
    }

    #[test]
    fn every_line_arrives_whole_in_order_and_close_writes_the_rest() {
        let sink: &'static Sink = Box::leak(Box::default());
        let out = Recorder::default();
        started(sink, out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        sink.append(format!("thread {t} line {i:05} {}\n", "x".repeat(i % 300)).as_bytes(), false);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.close();
        let written: Vec<u8> = out.0.lock().unwrap().concat();
        let text = String::from_utf8(written).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut words = line.split(' ');
            let (_, t, _, i) = (words.next(), words.next().unwrap(), words.next(), words.next().unwrap());
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order, none lost or cut");
            assert_eq!(line.len(), format!("thread {t} line {i:05} ").len() + i % 300);
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        assert!(out.0.lock().unwrap().len() < 8_000, "lines are written in batches, not one call each");
    }

    #[test]
    fn an_idle_writer_shows_a_line_at_once_and_a_busy_one_within_a_batch() {
        let sink: &'static Sink = Box::leak(Box::default());
        let out = Recorder::default();
        started(sink, out.clone());
        let seen = |n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while out.0.lock().unwrap().concat().iter().filter(|b| **b == b'\n').count() < n {
                assert!(std::time::Instant::now() < deadline, "line {n} was not written");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        sink.append(b"first\n", false);
        seen(1);
        sink.append(b"second\n", false);
        sink.append(b"a warning\n", true);
        seen(3);
        sink.close();
        sink.append(b"after close\n", false);
        assert_eq!(out.0.lock().unwrap().concat(), b"first\nsecond\na warning\n");
    }
}
