//! What the tests that run the real `weft control-plane` share: its ports and the
//! operator admin token.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// A loopback address whose port is reserved for this test process.
pub(crate) fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()))
}

/// The admin token of the control plane on `data_dir` (`weft token admin`), with an
/// empty `home`.
///
/// # Panics
/// When `weft token admin` fails (the test fails with its stderr).
pub(crate) fn admin_token(home: &Path, data_dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "admin", "--data-dir"])
        .arg(data_dir)
        .env("HOME", home)
        .output()
        .expect("run weft token admin");
    assert!(
        output.status.success(),
        "weft token admin: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("the token is text")
        .trim()
        .to_owned()
}
