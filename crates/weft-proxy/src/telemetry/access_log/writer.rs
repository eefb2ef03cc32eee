//! Writing lines: formatted on the caller's thread into one shared buffer, written
//! by one thread of the log's own, to stdout or to a file it rotates by size.
//!
//! Callers never wait on I/O: a line is formatted into a buffer of the calling
//! thread's (no allocation once it has grown) and copied into the log's buffer under
//! a lock held only for the copy. A line that finds the buffer full
//! ([`QUEUE_BYTES`]) is dropped and counted. The writer thread sleeps until a line
//! arrives, then gathers for up to [`GATHER`] (less when the buffer passes
//! [`WAKE_BYTES`], or on a flush) and writes everything with one `write` per file: a
//! busy log costs a wake-up and a write per [`GATHER`], not per line. I/O and
//! rotation errors are logged and counted, never fatal.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;

use super::{Entry, Format};

/// Bytes of lines the log holds before [`AccessLog::write`] drops them: some 8,000
/// JSON lines of 500 bytes.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How long the writer gathers lines after the first of a batch: a line reaches the
/// file at most this late (Envoy flushes its access logs every second too).
pub const GATHER: Duration = Duration::from_secs(1);

/// Bytes queued that wake the writer before [`GATHER`] is up.
const WAKE_BYTES: usize = 256 << 10;

/// A thread's line buffer above this is given back after the line, so one huge line
/// does not keep its memory.
const LINE_KEEP: usize = 16 << 10;

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The process's standard output, never rotated.
    Stdout,
    /// A file, rotated by size.
    File {
        /// The file written: created if missing, appended to if not.
        path: PathBuf,
        /// Bytes a file may hold, existing content included; the file is rotated
        /// before a line would take it past this. A line longer than this alone is
        /// written whole to a fresh file.
        max_bytes: u64,
        /// Rotated files kept, `path.1` (newest) to `path.<max_files>`; the oldest
        /// is deleted. With 0, rotation deletes the full file.
        max_files: u32,
    },
}

/// The access log: formats entries on the caller's thread and queues them for its
/// writer thread. Cheap to clone; the writer writes what is queued and ends when the
/// last clone is dropped.
#[derive(Clone, Debug)]
pub struct AccessLog {
    inner: Arc<Handle>,
}

/// What every clone shares; dropping it closes the queue.
#[derive(Debug)]
struct Handle {
    queue: Arc<Queue>,
    format: Format,
    dropped: Counter,
}

/// Lines between the callers and the writer thread.
#[derive(Debug)]
struct Queue {
    state: Mutex<Pending>,
    /// Wakes the writer: a first line, a full enough buffer, a flush, the close.
    wake: Condvar,
    /// Bytes [`Pending::bytes`] may hold.
    capacity: usize,
    /// See [`GATHER`].
    gather: Duration,
}

#[derive(Debug, Default)]
struct Pending {
    /// Whole lines, newlines included.
    bytes: Vec<u8>,
    /// Answered once every line queued before them is written.
    flushes: Vec<oneshot::Sender<()>>,
    /// Every clone of the log is gone: write what is left and end.
    closed: bool,
}

thread_local! {
    /// The calling thread's line buffer, reused from line to line.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The writer thread's side: where it writes and what it tells.
struct Out {
    target: Target,
    /// What the warnings name: `stdout` or the file's path.
    name: String,
    dropped: Counter,
    /// The first error of this batch, and lines lost to it and any after.
    failure: Option<io::Error>,
    lost: u64,
    /// A write failed and none has worked since: warn once, not per batch.
    failing: bool,
}

enum Target {
    Stdout,
    File(Rotating),
}

struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    /// Bytes in the current file, as far as this writer knows.
    size: u64,
}

// === impl AccessLog ===

impl AccessLog {
    /// Opens `destination` (a file now, so a bad path fails here, naming it) and
    /// starts the writer thread. `dropped` counts lines lost: the queue was full, or
    /// writing failed.
    pub fn open(destination: Destination, format: Format, dropped: Counter) -> io::Result<Self> {
        Self::open_with(destination, format, dropped, QUEUE_BYTES, GATHER).map(|(log, _)| log)
    }

    /// [`Self::open`] with a queue of `capacity` bytes gathered for `gather`,
    /// returning the writer thread.
    fn open_with(
        destination: Destination,
        format: Format,
        dropped: Counter,
        capacity: usize,
        gather: Duration,
    ) -> io::Result<(Self, JoinHandle<()>)> {
        let out = Out::open(destination, dropped.clone())?;
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            capacity,
            gather,
        });
        let writer = std::thread::Builder::new()
            .name("weft-access-log".into())
            .spawn({
                let queue = queue.clone();
                move || run(&queue, out)
            })
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the access log writer: {e}"))
            })?;
        let inner = Arc::new(Handle {
            queue,
            format,
            dropped,
        });
        Ok((Self { inner }, writer))
    }

    /// Formats `entry` and queues its line; never blocks on I/O. A full queue drops
    /// the line and counts it.
    pub fn write(&self, entry: &Entry<'_>) {
        let queued = LINE
            .try_with(|line| match line.try_borrow_mut() {
                Ok(mut line) => self.queue_line(entry, &mut line),
                // Only reentry gets here (formatting never writes a line): use a
                // buffer of its own.
                Err(_) => self.queue_line(entry, &mut Vec::new()),
            })
            // The thread is ending and its buffer is gone.
            .unwrap_or_else(|_| self.queue_line(entry, &mut Vec::new()));
        if !queued {
            self.inner.dropped.inc();
        }
    }

    /// Formats `entry` into `line` and queues it; false if there was no room.
    fn queue_line(&self, entry: &Entry<'_>, line: &mut Vec<u8>) -> bool {
        line.clear();
        self.inner.format.append(entry, line);
        line.push(b'\n');
        let queued = self.inner.queue.push(line);
        if line.capacity() > LINE_KEEP {
            *line = Vec::new();
        }
        queued
    }

    /// Returns once every line queued before the call is written (or counted as
    /// dropped), or the writer is gone. Call it on shutdown.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        self.inner.queue.lock().flushes.push(done);
        self.inner.queue.wake.notify_one();
        // An error means the writer ended: nothing more will be written.
        let _ = written.await;
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.wake.notify_one();
    }
}

// === impl Queue ===

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A poisoned queue still holds whole lines: the copy in `push` cannot panic
        // half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a whole line; false if it does not fit.
    fn push(&self, line: &[u8]) -> bool {
        let mut pending = self.lock();
        let before = pending.bytes.len();
        if before + line.len() > self.capacity {
            return false;
        }
        pending.bytes.extend_from_slice(line);
        let after = pending.bytes.len();
        drop(pending);
        // The writer waits for a first line, then for `WAKE_BYTES` or its time.
        if before == 0 || (before < WAKE_BYTES && after >= WAKE_BYTES) {
            self.wake.notify_one();
        }
        true
    }
}

/// The writer thread: writes in batches until the log is closed and its queue empty.
fn run(queue: &Queue, mut out: Out) {
    let mut batch = Vec::new();
    loop {
        let mut pending = queue.lock();
        while pending.bytes.is_empty() && pending.flushes.is_empty() && !pending.closed {
            pending = queue
                .wake
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // Gather what the next moments bring, unless asked to write now.
        let until = Instant::now() + queue.gather;
        while pending.flushes.is_empty() && !pending.closed && pending.bytes.len() < WAKE_BYTES {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pending = queue
                .wake
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut batch, &mut pending.bytes);
        let flushes = std::mem::take(&mut pending.flushes);
        let closed = pending.closed;
        drop(pending);
        out.write(&batch);
        batch.clear();
        // Count before answering: a flushed log's `dropped` is up to date.
        out.report();
        for done in flushes {
            let _ = done.send(());
        }
        if closed {
            // Nothing can be queued once every clone is gone; one last look.
            let rest = std::mem::take(&mut queue.lock().bytes);
            out.write(&rest);
            out.report();
            return;
        }
        if batch.capacity() > WAKE_BYTES * 2 {
            batch = Vec::new();
        }
    }
}

// === impl Out ===

impl Out {
    fn open(destination: Destination, dropped: Counter) -> io::Result<Self> {
        let (target, name) = match destination {
            Destination::Stdout => (Target::Stdout, "stdout".to_owned()),
            Destination::File {
                path,
                max_bytes,
                max_files,
            } => {
                let named = |e: io::Error| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open access log {}: {e}", path.display()),
                    )
                };
                let file = open_append(&path).map_err(named)?;
                let size = file.metadata().map_err(named)?.len();
                let name = path.display().to_string();
                let rotating = Rotating {
                    path,
                    max_bytes,
                    max_files,
                    file,
                    size,
                };
                (Target::File(rotating), name)
            }
        };
        Ok(Self {
            target,
            name,
            dropped,
            failure: None,
            lost: 0,
            failing: false,
        })
    }

    /// Writes whole `lines`, rotating between two lines whenever the next would take
    /// the file past its size.
    fn write(&mut self, mut lines: &[u8]) {
        while !lines.is_empty() {
            let room = self.target.room();
            let mut take = if lines.len() as u64 <= room {
                lines.len()
            } else {
                // The whole lines that fit: up to the last newline within the room.
                let within = usize::try_from(room).unwrap_or(usize::MAX).min(lines.len());
                lines[..within]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |at| at + 1)
            };
            if take == 0 {
                if !self.target.is_empty() {
                    self.target.rotate(&self.name);
                    continue;
                }
                // A line longer than a whole file: written whole, alone.
                take = lines
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(lines.len(), |at| at + 1);
            }
            let (now, rest) = lines.split_at(take);
            self.commit(now);
            self.target.grew(take as u64);
            lines = rest;
        }
    }

    /// Writes `lines`; on an error counts them all lost (some may be in the file, the
    /// last one perhaps in part).
    fn commit(&mut self, lines: &[u8]) {
        let written = match &mut self.target {
            Target::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout.write_all(lines).and_then(|()| stdout.flush())
            }
            Target::File(file) => file.file.write_all(lines),
        };
        if let Err(error) = written {
            self.lost += lines_in(lines);
            self.failure.get_or_insert(error);
        }
    }

    /// Counts the batch's lost lines, and warns when writing starts failing.
    fn report(&mut self) {
        self.dropped.inc_by(std::mem::take(&mut self.lost));
        match self.failure.take() {
            Some(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(
                    log = %self.name, %error,
                    "cannot write the access log; lines are dropped and counted until it works again"
                );
            }
            None if self.failing => {
                self.failing = false;
                tracing::info!(log = %self.name, "writing the access log works again");
            }
            Some(_) | None => {}
        }
    }
}

// === impl Target ===

impl Target {
    /// Bytes the file takes before it is full: unlimited for stdout.
    fn room(&self) -> u64 {
        match self {
            Self::Stdout => u64::MAX,
            Self::File(file) => file.max_bytes.saturating_sub(file.size),
        }
    }

    /// Whether nothing is in the file yet: a line too long for it is written anyway.
    fn is_empty(&self) -> bool {
        match self {
            Self::Stdout => true,
            Self::File(file) => file.size == 0,
        }
    }

    fn grew(&mut self, len: u64) {
        if let Self::File(file) = self {
            file.size += len;
        }
    }

    fn rotate(&mut self, name: &str) {
        if let Self::File(file) = self {
            file.rotate(name);
        }
    }
}

// === impl Rotating ===

impl Rotating {
    /// Moves `path` to `path.1` (and each `path.n` to `path.n+1`, deleting the
    /// oldest), then reopens `path`. On an error it writes on to the file it has, and
    /// tries again after another `max_bytes`, not on every line.
    fn rotate(&mut self, name: &str) {
        self.size = 0;
        if let Err(error) = shift(&self.path, self.max_files) {
            tracing::warn!(log = %name, %error, "cannot rotate the access log; writing on to the current file");
            return;
        }
        match open_append(&self.path) {
            Ok(file) => self.file = file,
            Err(error) => tracing::warn!(
                log = %name, %error,
                "cannot reopen the access log after rotating it; writing on to the rotated file"
            ),
        }
    }
}

/// Lines in whole `lines`: their newlines.
#[allow(clippy::naive_bytecount)] // only on a failed write: not worth a crate
fn lines_in(lines: &[u8]) -> u64 {
    lines.iter().filter(|b| **b == b'\n').count() as u64
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Shifts `path.n` to `path.n+1` for n from `max_files - 1` down, deleting
/// `path.<max_files>`, and moves `path` to `path.1`; with `max_files` 0, deletes
/// `path`.
fn shift(path: &Path, max_files: u32) -> io::Result<()> {
    if max_files == 0 {
        return ignore_missing(fs::remove_file(path));
    }
    ignore_missing(fs::remove_file(numbered(path, max_files)))?;
    for n in (1..max_files).rev() {
        ignore_missing(fs::rename(numbered(path, n), numbered(path, n + 1)))?;
    }
    fs::rename(path, numbered(path, 1))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
