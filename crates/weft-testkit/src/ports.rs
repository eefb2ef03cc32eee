//! Ports for the processes a test starts, reserved against every other test process.
//!
//! Binding port 0, reading the port and closing the socket is a race when tests run in
//! parallel processes: the kernel hands the same port to the next caller, and every
//! outgoing connection on the machine draws its source port from the same ephemeral
//! range. A control plane started on such a port can fail to bind and exit (seen in CI).
//!
//! A port from here is below the ephemeral range (so no client socket holds it as its
//! source port), was bindable when chosen, and is locked (`flock` on a file named after
//! it under the temporary directory) until this test process exits, so no other test
//! process is given it. The lock goes away with the process, so nothing goes stale.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

/// The ports handed out: above the quickstart blocks (`20000..28000`) and below Linux's
/// default ephemeral range (`32768..61000`).
const RANGE: std::ops::Range<u16> = 28_000..32_768;

/// The locks this process holds, released when it exits.
static HELD: Mutex<Vec<Flock<File>>> = Mutex::new(Vec::new());

/// A TCP port free on `ip` and reserved for this test process.
///
/// # Panics
/// When every port of the range is taken (a test suite leaking thousands of ports).
pub fn free_port(ip: impl Into<IpAddr>) -> u16 {
    let ip = ip.into();
    reserve(|port| TcpListener::bind((ip, port)).is_ok())
}

/// A port free for both TCP and UDP on `ip` (a DNS server), reserved for this process.
///
/// # Panics
/// As [`free_port`].
pub fn free_port_tcp_udp(ip: impl Into<IpAddr>) -> u16 {
    let ip = ip.into();
    reserve(|port| TcpListener::bind((ip, port)).is_ok() && UdpSocket::bind((ip, port)).is_ok())
}

/// A TCP port free on 127.0.0.1, reserved for this process.
///
/// # Panics
/// As [`free_port`].
pub fn free_loopback_port() -> u16 {
    free_port(Ipv4Addr::LOCALHOST)
}

fn reserve(bindable: impl Fn(u16) -> bool) -> u16 {
    let dir = lock_dir();
    let len = RANGE.end - RANGE.start;
    let start = start_offset(len);
    for i in 0..len {
        let port = RANGE.start + (start + i) % len;
        let Ok(file) = File::create(dir.join(port.to_string())) else {
            continue;
        };
        // `flock` locks conflict between open files even within one process, so this
        // also skips the ports this process already holds.
        let Ok(file) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if bindable(port) {
            HELD.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(file);
            return port;
        }
    }
    panic!(
        "no free port in {RANGE:?} under {}: remove stale test processes",
        dir.display()
    );
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("weft-test-ports");
    // A failure shows as every `File::create` failing, and then the panic above.
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Where this process starts looking, spread by process id and time so that parallel
/// test processes rarely contend for the same lock.
fn start_offset(len: u16) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(std::process::id()).wrapping_mul(2_654_435_761) ^ u64::from(nanos);
    u16::try_from(mixed % u64::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_handed_to_one_process_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_loopback_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        for port in ports {
            assert!(RANGE.contains(&port), "{port} outside {RANGE:?}");
            assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
        }
    }

    #[test]
    fn a_port_locked_by_another_process_is_not_handed_out() {
        // `flock` is per open file description: a lock taken through another handle
        // stands for another process's lock.
        let taken = free_loopback_port();
        let other = File::create(lock_dir().join(taken.to_string())).expect("open the lock file");
        assert!(
            Flock::lock(other, FlockArg::LockExclusiveNonblock).is_err(),
            "the handed-out port was not locked"
        );
    }
}
