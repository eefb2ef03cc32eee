//! Giving back the pages of code that ran only while the proxy started (ADR 34).
//!
//! One binary carries the control plane, the CLI and the proxy, and starting a proxy
//! runs code spread over most of it (argument parsing, config loading, TLS set-up,
//! listener binding); the kernel maps 64 KiB around every page fault in a file mapping,
//! so an idle proxy kept ~10 MB of the binary resident that it would not run again
//! (bench/RESULTS.md, 2026-12-07). Once the proxy is ready, [`release_startup_pages`]
//! unmaps the binary's read-only and executable pages from this process: what the proxy
//! runs from then on faults back in from the page cache (a minor fault per 64 KiB, about
//! a millisecond in all for the request path), the rest stays out of its RSS. Like the
//! kernel freeing its `__init` sections, but without knowing in advance which code was
//! start-up only.
//!
//! Safe because only mappings of the executable with no private (copy-on-write) pages are
//! touched: their contents are the file's, which the kernel may drop and re-read at any
//! time under memory pressure anyway. Mappings the dynamic loader wrote to (relocations,
//! RELRO) hold anonymous pages and are left alone.

use std::io;
use std::path::{Path, PathBuf};

/// What [`release_startup_pages`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Mappings of the executable whose pages were released.
    pub mappings: usize,
    /// Resident bytes of those mappings just before.
    pub resident_bytes: u64,
}

/// Releases this process's resident pages of its own executable's read-only and
/// executable mappings (see the [module documentation](self)). Linux only; elsewhere,
/// or when `/proc` is unreadable, it returns the error and changes nothing.
pub fn release_startup_pages() -> io::Result<Released> {
    let exe = executable()?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = Released::default();
    for mapping in clean_mappings(&smaps, &exe) {
        advise_dont_need(mapping.start, mapping.len)?;
        released.mappings += 1;
        released.resident_bytes += mapping.resident_bytes;
    }
    Ok(released)
}

/// One mapping of the executable that may be released.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    len: usize,
    resident_bytes: u64,
}

/// The mappings of `exe` in `smaps` that are read-only or read-execute, private, and
/// hold no anonymous (written) page.
fn clean_mappings(smaps: &str, exe: &Path) -> Vec<Mapping> {
    let mut found = Vec::new();
    // The mapping being read: (start, len, eligible so far, resident bytes).
    let mut current: Option<(usize, usize, bool, u64)> = None;
    let mut finish = |current: Option<(usize, usize, bool, u64)>| {
        if let Some((start, len, true, resident_bytes)) = current {
            found.push(Mapping {
                start,
                len,
                resident_bytes,
            });
        }
    };
    for line in smaps.lines() {
        if let Some(header) = header(line) {
            finish(current.take());
            let eligible = matches!(header.perms, "r-xp" | "r--p")
                && Path::new(header.path) == exe
                && header.end > header.start;
            current = Some((header.start, header.end - header.start, eligible, 0));
            continue;
        }
        let Some((_, _, eligible, resident)) = current.as_mut() else {
            continue;
        };
        if let Some(kb) = field_kb(line, "Rss:") {
            *resident = kb * 1024;
        } else if let Some(kb) = field_kb(line, "Anonymous:") {
            // A written (copy-on-write) page would be lost: not this mapping.
            *eligible &= kb == 0;
        }
    }
    finish(current.take());
    found
}

/// A mapping's header line: `start-end perms offset dev inode [path]`.
struct Header<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    path: &'a str,
}

fn header(line: &str) -> Option<Header<'_>> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    // offset, device, inode
    fields.next()?;
    fields.next()?;
    fields.next()?;
    // The path is the rest of the line (it may contain spaces).
    let path = line
        .splitn(6, |c: char| c.is_ascii_whitespace())
        .nth(5)
        .map_or("", str::trim_start);
    (perms.len() == 4).then_some(Header {
        start,
        end,
        perms,
        path,
    })
}

/// `Name:   N kB` → N.
fn field_kb(line: &str, name: &str) -> Option<u64> {
    let rest = line.strip_prefix(name)?;
    rest.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// `madvise(MADV_DONTNEED)` on one clean file mapping.
#[allow(unsafe_code)] // the one call that needs it; see the SAFETY note
fn advise_dont_need(start: usize, len: usize) -> io::Result<()> {
    let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return Ok(());
    };
    // SAFETY: `start..start + len` is a whole private mapping of this process's own
    // executable, read-only or read-execute, that held no anonymous page when smaps was
    // read: every page in it equals the file's contents, so dropping the pages changes
    // no value the program can observe; the next access re-reads them from the page
    // cache, as after the kernel reclaimed them under memory pressure. (Only a debugger
    // writing a breakpoint between the read and this call could make a page private
    // meanwhile; the breakpoint would then be lost, nothing else.)
    unsafe { nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED) }
        .map_err(io::Error::from)
}

/// The path this process runs from, as `/proc/self/maps` names it.
pub fn executable() -> io::Result<PathBuf> {
    std::fs::read_link("/proc/self/exe")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a04b1000 r--p 00000000 fd:01 1234 /opt/weft/bin/weft
Rss:                2048 kB
Anonymous:             0 kB
55d0a04b1000-55d0a177e000 r-xp 004b0000 fd:01 1234 /opt/weft/bin/weft
Size:              19252 kB
Rss:               10240 kB
Anonymous:             0 kB
55d0a177e000-55d0a17fd000 r--p 0177c000 fd:01 1234 /opt/weft/bin/weft
Rss:                 504 kB
Anonymous:           504 kB
55d0a17fd000-55d0a180a000 rw-p 017fa000 fd:01 1234 /opt/weft/bin/weft
Rss:                  52 kB
Anonymous:            40 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 800 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r--p 00000000 00:00 0
Rss:                 100 kB
Anonymous:           100 kB
";

    #[test]
    fn only_the_executables_unwritten_read_only_and_code_mappings_are_chosen() {
        let chosen = clean_mappings(SMAPS, Path::new("/opt/weft/bin/weft"));
        assert_eq!(
            chosen,
            vec![
                Mapping {
                    start: 0x55d0_a000_0000,
                    len: 0x4b_1000,
                    resident_bytes: 2048 * 1024,
                },
                Mapping {
                    start: 0x55d0_a04b_1000,
                    len: 0x12c_d000,
                    resident_bytes: 10240 * 1024,
                },
            ],
            "not the relocated (RELRO) part, not the writable data, not libc"
        );
    }

    #[test]
    fn another_path_or_a_garbled_file_chooses_nothing() {
        assert!(clean_mappings(SMAPS, Path::new("/usr/bin/other")).is_empty());
        assert!(clean_mappings("not smaps at all\nRss: 5 kB\n", Path::new("/x")).is_empty());
    }

    /// Pages of this test binary's own code: their resident size.
    fn resident_code() -> u64 {
        let exe = executable().unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        clean_mappings(&smaps, &exe)
            .iter()
            .map(|m| m.resident_bytes)
            .sum()
    }

    #[test]
    fn releasing_drops_resident_code_and_the_code_still_runs() {
        let before = resident_code();
        assert!(
            before > 0,
            "the test binary's code is resident while it runs"
        );
        let released = release_startup_pages().unwrap();
        assert!(released.mappings >= 1, "{released:?}");
        let after = resident_code();
        assert!(
            after < before,
            "resident code went from {before} to {after} bytes"
        );
        // Code not run since the release faults back in and works.
        let parsed = header("1-2 r-xp 0 0:0 0 /x").map(|h| h.perms.to_owned());
        assert_eq!(parsed.as_deref(), Some("r-xp"));
    }
}
