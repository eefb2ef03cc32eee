#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

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
    let mut line = Vec::new();
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
    // Room for 4 lines, and a writer that waits for the flush.
    let (log, _writer) = AccessLog::open_with(
        file(path.clone(), 1 << 20, 1),
        Format::Json,
        dropped.clone(),
        usize::try_from(line_len() * 4).unwrap(),
        Duration::from_secs(3600),
    )
    .unwrap();
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
    let (log, writer) = AccessLog::open_with(
        file(path.clone(), 1 << 20, 1),
        Format::Text(template),
        Counter::default(),
        QUEUE_BYTES,
        Duration::from_secs(3600),
    )
    .unwrap();
    let clone = log.clone();
    for n in 0..50 {
        clone.write(&entry(&numbered_path(n)));
    }
    drop(log);
    drop(clone);
    // The hour of gathering is cut short by the close.
    let joined = tokio::task::spawn_blocking(move || writer.join());
    tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .expect("the writer ends")
        .unwrap()
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
fn lines_are_written_without_a_runtime_and_within_the_gathering_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = AccessLog::open(
        file(path.clone(), 1 << 20, 1),
        Format::Json,
        Counter::default(),
    )
    .unwrap();
    log.write(&entry(&numbered_path(1)));
    // No flush: the writer writes on its own once GATHER is up.
    let deadline = std::time::Instant::now() + GATHER * 20;
    while paths_in(&path).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(GATHER / 4);
    }
    assert_eq!(paths_in(&path), [numbered_path(1)]);
}
