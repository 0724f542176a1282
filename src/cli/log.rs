//! Where `berth serve` writes its log: standard error, the access log in
//! batches. An access line is appended to a shared buffer (one short lock,
//! no system call, no thread woken); a thread writes the buffer out every
//! 100 ms, and a writer that finds it past 256 KiB writes it out itself. So a
//! busy server makes a few writes a second rather than one per request. Every
//! other line goes out at once (with the access lines before it, in order).
//! What a SIGKILL or a crash takes: at most the last 100 ms of access lines.
//! [`Flush`] writes the rest out when dropped (at shutdown).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(100);
const FULL: usize = 256 * 1024;

#[derive(Clone, Default)]
pub struct Batched {
    buf: Arc<Mutex<Vec<u8>>>,
    /// Held while a batch is written, so batches leave in order.
    out: Arc<Mutex<()>>,
    /// Whether this writer's line goes out at once.
    urgent: bool,
}

/// The target of the access log, whose lines are batched.
const ACCESS: &str = "berth::access";

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Batched {
        Batched {
            urgent: true,
            ..self.clone()
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Batched {
        Batched {
            urgent: meta.target() != ACCESS || *meta.level() <= tracing::Level::WARN,
            ..self.clone()
        }
    }
}

impl Batched {
    /// Starts the thread that writes batches out; the returned guard
    /// writes the last one.
    pub fn start() -> (Batched, Flush) {
        let log = Batched::default();
        let background = log.clone();
        let _ = std::thread::Builder::new()
            .name("berth-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EVERY);
                    background.write_out();
                }
            });
        (log.clone(), Flush(log))
    }

    fn write_out(&self) {
        let Ok(_order) = self.out.lock() else { return };
        let batch = match self.buf.lock() {
            Ok(mut b) if !b.is_empty() => std::mem::take(&mut *b),
            _ => return,
        };
        // Nowhere to report a failure to write the log.
        let _ = std::io::stderr().lock().write_all(&batch);
    }
}

impl Write for Batched {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = match self.buf.lock() {
            Ok(mut b) => {
                b.extend_from_slice(line);
                self.urgent || b.len() >= FULL
            }
            Err(_) => return std::io::stderr().write(line),
        };
        if full {
            self.write_out();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes out what is buffered when dropped.
pub struct Flush(Batched);

impl Drop for Flush {
    fn drop(&mut self) {
        self.0.write_out();
    }
}
