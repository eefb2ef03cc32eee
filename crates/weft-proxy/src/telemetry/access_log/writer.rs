//! Writing lines: a bounded queue of formatted lines and one task that writes what
//! is queued in batches, to stdout or to a file it rotates by size.
//!
//! Callers never wait: a line that finds the queue full is dropped and counted. The
//! task takes everything queued (up to [`BATCH_LINES`]), writes it on the blocking
//! pool with one `write` per file (or per [`WRITE_BYTES`]), and only then waits
//! again: nothing is buffered while the queue is empty. I/O and rotation errors are
//! logged and counted, never fatal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Entry, Format};

/// Lines the queue holds before [`AccessLog::write`] drops them: at 500 bytes a
/// line, about 4 MB.
pub const QUEUE_LINES: usize = 8192;

/// Lines taken from the queue per batch at most, so a log that is never idle still
/// reaches the disk (and answers [`AccessLog::flush`]) in bounded steps.
const BATCH_LINES: usize = 1024;

/// Bytes gathered before a write at most, so long lines don't grow the buffer
/// without bound.
const WRITE_BYTES: usize = 1 << 20;

/// Bytes reserved for a line up front: most JSON lines fit.
const LINE_CAPACITY: usize = 512;

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
/// writer task. Cheap to clone; the task drains the queue and exits when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub struct AccessLog {
    queue: mpsc::Sender<Command>,
    format: Arc<Format>,
    dropped: Counter,
}

#[derive(Debug)]
enum Command {
    /// A formatted line, newline included.
    Line(String),
    /// Answer once every line queued before is written (or counted as dropped).
    Flush(oneshot::Sender<()>),
}

/// The writer task's side: where it writes and what it tells.
struct Out {
    target: Target,
    /// What the warnings name: `stdout` or the file's path.
    name: String,
    dropped: Counter,
    /// Bytes of whole lines not yet written, reused between batches.
    pending: Vec<u8>,
    /// Lines in `pending`.
    pending_lines: u64,
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
    /// spawns the writer task. Must be called inside a tokio runtime; outside one it
    /// fails. `dropped` counts lines lost: the queue was full, or writing failed.
    pub fn open(destination: Destination, format: Format, dropped: Counter) -> io::Result<Self> {
        Self::open_with(destination, format, dropped, QUEUE_LINES).map(|(log, _task)| log)
    }

    /// [`Self::open`] with a queue of `capacity` lines, returning the writer task.
    fn open_with(
        destination: Destination,
        format: Format,
        dropped: Counter,
        capacity: usize,
    ) -> io::Result<(Self, JoinHandle<()>)> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!(
                "the access log must be opened in a tokio runtime: {e}"
            ))
        })?;
        let out = Out::open(destination, dropped.clone())?;
        let (queue, lines) = mpsc::channel(capacity);
        let task = runtime.spawn(run(lines, out));
        let log = Self {
            queue,
            format: Arc::new(format),
            dropped,
        };
        Ok((log, task))
    }

    /// Formats `entry` and queues its line; never blocks. A full queue drops the line
    /// and counts it.
    pub fn write(&self, entry: &Entry<'_>) {
        let mut line = String::with_capacity(LINE_CAPACITY);
        self.format.append(entry, &mut line);
        line.push('\n');
        if self.queue.try_send(Command::Line(line)).is_err() {
            self.dropped.inc();
        }
    }

    /// Returns once every line queued before the call is written (or counted as
    /// dropped), or the writer is gone. Waits for room in the queue, so it may take a while
    /// under load; call it on shutdown.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            // An error means the writer ended: nothing more will be written.
            let _ = written.await;
        }
    }
}

/// The writer task: batches until every clone of the log is dropped and the queue is
/// empty.
async fn run(mut queue: mpsc::Receiver<Command>, mut out: Out) {
    let mut batch = Vec::with_capacity(BATCH_LINES);
    while queue.recv_many(&mut batch, BATCH_LINES).await > 0 {
        let write = tokio::task::spawn_blocking(move || {
            out.write(&mut batch);
            (out, batch)
        });
        match write.await {
            Ok(done) => (out, batch) = done,
            Err(error) => {
                // Only a panic or a runtime shutting down gets here.
                tracing::warn!(%error, "the access log writer stopped; lines are dropped from now on");
                return;
            }
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
            pending: Vec::new(),
            pending_lines: 0,
            failure: None,
            lost: 0,
            failing: false,
        })
    }

    /// Writes the batch's lines, rotating between them as needed, counts what was
    /// lost, then answers its flushes; leaves the batch empty.
    fn write(&mut self, batch: &mut Vec<Command>) {
        for command in batch.iter() {
            let Command::Line(line) = command else {
                continue;
            };
            let len = line.len() as u64;
            if self.target.is_full_before(len) {
                self.commit();
                self.target.rotate(&self.name);
            } else if self.pending.len() >= WRITE_BYTES {
                self.commit();
            }
            self.pending.extend_from_slice(line.as_bytes());
            self.pending_lines += 1;
            self.target.grew(len);
        }
        self.commit();
        // Count before answering: a flushed log's `dropped` is up to date.
        self.report();
        for command in batch.drain(..) {
            if let Command::Flush(done) = command {
                let _ = done.send(());
            }
        }
    }

    /// Writes the pending lines; on an error counts them all lost (some may be in the
    /// file, the last one perhaps in part).
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let written = match &mut self.target {
            Target::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(&self.pending)
                    .and_then(|()| stdout.flush())
            }
            Target::File(file) => file.file.write_all(&self.pending),
        };
        if let Err(error) = written {
            self.lost += self.pending_lines;
            self.failure.get_or_insert(error);
        }
        self.pending.clear();
        self.pending_lines = 0;
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
    /// Whether a line of `len` bytes would take the file past its size: never for
    /// stdout, nor for an empty file (a line longer than the limit is written whole).
    fn is_full_before(&self, len: u64) -> bool {
        match self {
            Self::Stdout => false,
            Self::File(file) => file.size > 0 && file.size.saturating_add(len) > file.max_bytes,
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
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::{Direction, ResponseFlags};
    use super::*;

    /// An entry whose line has the same length for every `n` below 10 000.
    fn entry(path: &str) -> Entry<'_> {
        Entry {
            start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            direction: Direction::Outbound,
            source_identity: "spiffe://cluster.local/ns/shop/sa/frontend",
            destination_service: "catalog.shop",
            destination_workload: "shop/catalog-0",
            destination_identity: "",
            upstream: Some(SocketAddr::from(([10, 0, 0, 7], 15008))),
            route: "HTTPRoute/shop/catalog",
            route_rule: Some(0),
            method: "GET",
            authority: "catalog.shop",
            path,
            protocol: "HTTP/1.1",
            status: 200,
            grpc_status: None,
            duration: Duration::from_millis(3),
            request_bytes: 0,
            response_bytes: 10,
            retries: 0,
            trace_id: None,
            flags: ResponseFlags::EMPTY,
        }
    }

    fn numbered_path(n: usize) -> String {
        format!("/items/{n:04}")
    }

    fn file(path: PathBuf, max_bytes: u64, max_files: u32) -> Destination {
        Destination::File {
            path,
            max_bytes,
            max_files,
        }
    }

    /// The `path` of each line of `file`, checking that each is a whole JSON line.
    fn paths_in(file: &Path) -> Vec<String> {
        let text = fs::read_to_string(file).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).unwrap();
                json["path"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn line_len() -> u64 {
        let mut line = String::new();
        Format::Json.append(&entry(&numbered_path(0)), &mut line);
        line.len() as u64 + 1
    }

    #[test]
    fn the_log_is_cheap_to_share_between_threads() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<AccessLog>();
    }

    #[tokio::test]
    async fn flush_returns_once_every_queued_line_is_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Counter::default();
        let log = AccessLog::open(
            file(path.clone(), 1 << 20, 2),
            Format::Json,
            dropped.clone(),
        )
        .unwrap();
        for n in 0..100 {
            log.write(&entry(&numbered_path(n)));
        }
        log.flush().await;
        let want: Vec<_> = (0..100).map(numbered_path).collect();
        assert_eq!(paths_in(&path), want);
        assert_eq!(dropped.get(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_from_many_threads_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(
            file(path.clone(), 1 << 20, 2),
            Format::Json,
            Counter::default(),
        )
        .unwrap();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let log = log.clone();
                scope.spawn(move || {
                    for n in 0..250 {
                        log.write(&entry(&numbered_path(t * 250 + n)));
                    }
                });
            }
        });
        log.flush().await;
        let mut got = paths_in(&path);
        got.sort();
        assert_eq!(got, (0..1000).map(numbered_path).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn rotation_keeps_max_files_of_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        // Room for 10 lines and a half: the 11th line goes to the next file.
        let max_bytes = line_len() * 10 + line_len() / 2;
        let log = AccessLog::open(
            file(path.clone(), max_bytes, 2),
            Format::Json,
            Counter::default(),
        )
        .unwrap();
        for n in 0..45 {
            log.write(&entry(&numbered_path(n)));
            if n % 7 == 0 {
                // Rotation must not depend on how lines were batched.
                log.flush().await;
            }
        }
        log.flush().await;
        let lines = |range: std::ops::Range<usize>| range.map(numbered_path).collect::<Vec<_>>();
        assert_eq!(paths_in(&numbered(&path, 2)), lines(20..30));
        assert_eq!(paths_in(&numbered(&path, 1)), lines(30..40));
        assert_eq!(paths_in(&path), lines(40..45));
        assert!(!numbered(&path, 3).exists(), "no more than max_files");
        for kept in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            assert!(fs::metadata(&kept).unwrap().len() <= max_bytes);
        }
        let mut files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|f| f.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["access.log", "access.log.1", "access.log.2"]);
    }

    #[tokio::test]
    async fn rotation_counts_what_the_file_held_before_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        // 9 lines' worth already there: one more line fits, the next rotates.
        let before = "x".repeat(usize::try_from(line_len() * 9 - 1).unwrap()) + "\n";
        fs::write(&path, &before).unwrap();
        let log = AccessLog::open(
            file(path.clone(), line_len() * 10, 1),
            Format::Json,
            Counter::default(),
        )
        .unwrap();
        for n in 0..3 {
            log.write(&entry(&numbered_path(n)));
        }
        log.flush().await;
        let old = fs::read_to_string(numbered(&path, 1)).unwrap();
        let (kept, appended) = old.split_at(before.len());
        assert_eq!(kept, before);
        let appended: serde_json::Value = serde_json::from_str(appended).unwrap();
        assert_eq!(appended["path"], numbered_path(0));
        assert_eq!(paths_in(&path), [numbered_path(1), numbered_path(2)]);
    }

    #[tokio::test]
    async fn rotation_with_no_files_kept_starts_the_file_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(
            file(path.clone(), line_len() * 2, 0),
            Format::Json,
            Counter::default(),
        )
        .unwrap();
        for n in 0..5 {
            log.write(&entry(&numbered_path(n)));
        }
        log.flush().await;
        assert_eq!(paths_in(&path), [numbered_path(4)]);
        assert!(!numbered(&path, 1).exists());
    }

    #[tokio::test]
    async fn a_full_queue_drops_lines_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Counter::default();
        let (log, _task) = AccessLog::open_with(
            file(path.clone(), 1 << 20, 1),
            Format::Json,
            dropped.clone(),
            4,
        )
        .unwrap();
        // On this single-threaded runtime the writer cannot run before the test
        // yields, so the queue fills after 4 lines.
        for n in 0..10 {
            log.write(&entry(&numbered_path(n)));
        }
        assert_eq!(dropped.get(), 6);
        log.flush().await;
        assert_eq!(
            paths_in(&path),
            (0..4).map(numbered_path).collect::<Vec<_>>()
        );
        log.write(&entry(&numbered_path(10)));
        log.flush().await;
        assert_eq!(dropped.get(), 6, "room again once the writer caught up");
        assert_eq!(paths_in(&path).len(), 5);
    }

    #[tokio::test]
    async fn dropping_every_clone_drains_the_queue_and_ends_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let template = super::super::Template::parse("{path}").unwrap();
        let (log, task) = AccessLog::open_with(
            file(path.clone(), 1 << 20, 1),
            Format::Text(template),
            Counter::default(),
            QUEUE_LINES,
        )
        .unwrap();
        let clone = log.clone();
        for n in 0..50 {
            clone.write(&entry(&numbered_path(n)));
        }
        drop(log);
        drop(clone);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the writer ends")
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let want: String = (0..50).map(|n| numbered_path(n) + "\n").collect();
        assert_eq!(text, want);
    }

    #[tokio::test]
    async fn lines_that_cannot_be_written_are_counted_as_dropped() {
        let full = PathBuf::from("/dev/full");
        if !full.exists() {
            return;
        }
        let dropped = Counter::default();
        let log = AccessLog::open(file(full, 1 << 20, 1), Format::Json, dropped.clone()).unwrap();
        for n in 0..10 {
            log.write(&entry(&numbered_path(n)));
        }
        log.flush().await;
        assert_eq!(dropped.get(), 10);
        log.write(&entry(&numbered_path(10)));
        log.flush().await;
        assert_eq!(dropped.get(), 11, "the writer carries on after a failure");
    }

    #[tokio::test]
    async fn a_bad_path_fails_at_open_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("access.log");
        let err = AccessLog::open(
            file(path.clone(), 1 << 20, 1),
            Format::Json,
            Counter::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn opening_outside_a_runtime_fails_without_panicking() {
        let err =
            AccessLog::open(Destination::Stdout, Format::Json, Counter::default()).unwrap_err();
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }
}
