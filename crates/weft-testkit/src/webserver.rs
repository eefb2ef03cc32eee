//! Real web servers as apps: nginx and Apache httpd (the Debian packages), serving a
//! directory on one address, each with its own way of reading paths. The
//! authorization bypass tests put them behind the mesh: a denial must hold against
//! how each of them resolves a path, not only against a strict one.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// nginx, one worker.
    Nginx,
    /// Apache httpd 2.4, event MPM.
    Apache,
}

impl Kind {
    /// Its binary.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Nginx => "/usr/sbin/nginx",
            Self::Apache => "/usr/sbin/apache2",
        }
    }

    /// The Debian package that has it.
    pub fn package(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Apache => "apache2",
        }
    }
}

/// Whether a test that needs `kind` runs here: `true` when it is installed;
/// otherwise skips with a message, or fails under `WEFT_E2E=required`.
pub fn guard(test: &str, kind: Kind) -> bool {
    if Path::new(kind.binary()).exists() {
        return true;
    }
    crate::wait::skip(
        test,
        &format!(
            "{} is not installed (apt-get install {})",
            kind.binary(),
            kind.package()
        ),
    )
}

/// A running server; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its error log, for a failing test's message.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// Writes `files` (path under the document root, contents) into a document root that
/// any user can read (the servers' workers drop to `nobody` when started as root).
pub fn docroot(files: &[(&str, &str)]) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("weft-docroot").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    for (path, contents) in files {
        let file = dir.path().join(path.trim_start_matches('/'));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
            let mut p = parent;
            while p != dir.path() {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
                p = p.parent().unwrap_or(dir.path());
            }
        }
        std::fs::write(&file, contents)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(dir)
}

/// Starts `kind` on `addr` serving `root`; waits until it accepts connections.
pub fn spawn(kind: Kind, addr: SocketAddr, root: &Path) -> std::io::Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix("weft-webserver")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let root = root.display();
    let d = dir.path().display();
    let as_root = nix::unistd::geteuid().is_root();
    let mut command = match kind {
        Kind::Nginx => {
            let conf = format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                 server {{ listen {addr}; root {root}; location / {{ }} }}\n}}\n"
            );
            let path = dir.path().join("nginx.conf");
            std::fs::write(&path, conf)?;
            let mut c = Command::new(kind.binary());
            c.arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&path)
                .arg("-g")
                .arg("daemon off;");
            c
        }
        Kind::Apache => {
            let user = if as_root {
                "User nobody\nGroup nogroup\n"
            } else {
                ""
            };
            let conf = format!(
                "ServerRoot \"{d}\"\nServerName localhost\nPidFile {d}/apache.pid\n\
                 Mutex file:{d} default\nDefaultRuntimeDir {d}\nListen {addr}\n\
                 LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
                 LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
                 {user}ErrorLog {d}/error.log\nDocumentRoot \"{root}\"\n\
                 <Directory \"{root}\">\n  Require all granted\n</Directory>\n"
            );
            let path = dir.path().join("apache.conf");
            std::fs::write(&path, conf)?;
            let mut c = Command::new(kind.binary());
            c.arg("-f").arg(&path).arg("-DFOREGROUND");
            c
        }
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut server = Server { child, addr, dir };
    let up = crate::wait::eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    if !up {
        let log = server.error_log();
        let status = server.child.try_wait().ok().flatten();
        return Err(std::io::Error::other(format!(
            "{} did not start on {addr} (exit {status:?}): {log}",
            kind.binary()
        )));
    }
    Ok(server)
}
