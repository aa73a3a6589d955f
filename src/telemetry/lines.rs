//! Log lines reach standard error from a thread of their own, in batches. Written in place,
//! every call paid a `write` to a pipe (and the wake-up of whoever reads it) for its audit line:
//! a quarter of the throughput at 64 connections, 20 µs at one. And a log reader that stalls
//! (a full pipe) stopped every call on the worker thread that wrote.
//!
//! A line is appended to a buffer in memory; the first line of a batch wakes the writer thread,
//! which waits [`BATCH`] for the lines that follow, then writes them all at once. Calls never
//! wait on standard error: beyond [`MAX_BUFFERED`] bytes not yet written, lines are dropped, and
//! how many is written as soon as standard error takes lines again. [`Lines::close`] writes what
//! is left and makes later lines go straight through.

use std::io::Write;
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits, after a batch's first line, for the lines that follow.
const BATCH: Duration = Duration::from_millis(10);

/// Bytes of lines not yet written beyond which new lines are dropped.
const MAX_BUFFERED: usize = 4 << 20;

/// The log's destination: a handle the `fmt` layer writes each line through.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Told when a batch begins, and when the log closes.
    begun: Condvar,
    /// Held while a batch is written, so that batches reach the output in order.
    output: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

impl Lines {
    /// Lines to standard error, written by a thread started here.
    pub fn to_stderr() -> Lines {
        Lines::to(Box::new(std::io::stderr()))
    }

    fn to(output: Box<dyn Write + Send>) -> Lines {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            begun: Condvar::new(),
            output: Mutex::new(output),
        });
        let writer = shared.clone();
        let started = std::thread::Builder::new().name("mcpgate-log".to_owned()).spawn(move || writer.run());
        let lines = Lines { shared };
        if let Err(err) = started {
            // Without the thread, every line is written in place, as before batching.
            eprintln!("warning: log lines are written in place: no thread for them ({err})");
            lines.shared.lock().closed = true;
        }
        lines
    }

    /// Writes every line not yet written; later lines go straight to the output.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.begun.notify_all();
        self.shared.write_pending();
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        if pending.closed {
            drop(pending);
            self.shared.write(line);
            return;
        }
        if pending.bytes.len() + line.len() > MAX_BUFFERED {
            pending.dropped += 1;
            return;
        }
        let begins = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        if begins {
            self.shared.begun.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked while appending left whole lines behind: the buffer is usable.
        self.pending.lock().unwrap_or_else(|it| it.into_inner())
    }

    /// The writer thread: a batch at a time, until the log closes.
    fn run(&self) {
        loop {
            let mut pending = self.lock();
            while pending.bytes.is_empty() && pending.dropped == 0 && !pending.closed {
                pending = self.begun.wait(pending).unwrap_or_else(|it| it.into_inner());
            }
            if pending.closed {
                return;
            }
            drop(pending);
            std::thread::sleep(BATCH);
            self.write_pending();
        }
    }

    /// Writes the lines buffered so far, and how many were dropped.
    fn write_pending(&self) {
        let mut output = self.output.lock().unwrap_or_else(|it| it.into_inner());
        let (bytes, dropped) = {
            let mut pending = self.lock();
            // The next batch starts with room for one as big as this one, rather than growing
            // from nothing through every power of two while calls append to it.
            let room = pending.bytes.len();
            (mem::replace(&mut pending.bytes, Vec::with_capacity(room)), mem::take(&mut pending.dropped))
        };
        // Nowhere to say that standard error failed: the lines are lost either way.
        let _ = output.write_all(&bytes);
        if dropped > 0 {
            let note = format!(
                "mcpgate: {dropped} log lines dropped: standard error did not take them as fast as they came\n"
            );
            let _ = output.write_all(note.as_bytes());
        }
        let _ = output.flush();
    }

    fn write(&self, line: &[u8]) {
        let mut output = self.output.lock().unwrap_or_else(|it| it.into_inner());
        let _ = output.write_all(line);
        let _ = output.flush();
    }
}

impl Write for &Lines {
    /// `fmt` hands over each event as one whole line.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = &'a Lines;

    fn make_writer(&'a self) -> &'a Lines {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An output the test reads, recording the size of each write.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<(Vec<u8>, Vec<usize>)>>);

    impl Write for Recorded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut recorded = self.0.lock().unwrap();
            recorded.0.extend_from_slice(buf);
            recorded.1.push(buf.len());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorded {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }

        fn writes(&self) -> usize {
            self.0.lock().unwrap().1.len()
        }
    }

    fn line(lines: &Lines, text: &str) {
        let mut writer = lines.make_writer();
        writer.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_arrive_in_order_in_one_write_per_batch() {
        let output = Recorded::default();
        let lines = Lines::to(Box::new(output.clone()));
        for n in 0..100 {
            line(&lines, &format!("line {n}\n"));
        }
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while output.text() != expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(output.text(), expected);
        // One write per batch: a few, should the test thread be held up between its lines.
        assert!(output.writes() < 10, "{} writes for 100 lines", output.writes());
    }

    #[test]
    fn closing_writes_what_is_left_and_later_lines_at_once() {
        let output = Recorded::default();
        let lines = Lines::to(Box::new(output.clone()));
        line(&lines, "before\n");
        lines.close();
        assert_eq!(output.text(), "before\n");
        line(&lines, "after\n");
        assert_eq!(output.text(), "before\nafter\n");
    }

    #[test]
    fn beyond_the_cap_lines_are_dropped_and_counted_never_waited_for() {
        /// An output that does not take anything until told to.
        #[derive(Clone)]
        struct Stalled(Arc<(Mutex<bool>, Condvar)>, Recorded);
        impl Write for Stalled {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (open, told) = &*self.0;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = told.wait(open).unwrap();
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let output = Recorded::default();
        let lines = Lines::to(Box::new(Stalled(gate.clone(), output.clone())));
        let long = format!("{}\n", "x".repeat(1023));
        // The first batch is taken by the stalled writer; the next fills the buffer.
        line(&lines, &long);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lines.shared.lock().bytes.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let started = Instant::now();
        let n = MAX_BUFFERED / long.len() + 10;
        for _ in 0..n {
            line(&lines, &long);
        }
        assert!(started.elapsed() < Duration::from_secs(2), "appending waited on the output");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        lines.close();
        let text = output.text();
        assert!(text.ends_with(
            "mcpgate: 10 log lines dropped: standard error did not take them as fast as they came\n"
        ));
        assert_eq!(text.matches(&long).count(), 1 + n - 10);
    }
}
