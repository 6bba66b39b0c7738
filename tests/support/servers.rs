//! Throwaway PostgreSQL and Redis servers from the installed binaries: a temp data directory,
//! a free loopback port, gone when dropped.

use crate::free_port;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

/// Directory of the PostgreSQL server binaries: `PG_BIN`, else the newest under
/// /usr/lib/postgresql.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL server binaries (initdb) under /usr/lib/postgresql or in PG_BIN")
}

/// A PostgreSQL cluster of its own. As root it runs as the `postgres` user, since PostgreSQL
/// refuses to run as root.
pub struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    /// Initialises and starts a cluster for tests (fsync off: a crash of the machine is not
    /// what tests simulate); the database `rapport` is ready when this returns.
    pub fn start() -> Postgres {
        Self::start_with(false, None, &[])
    }

    /// A cluster that syncs every commit to disk, as production does (for benchmarks).
    pub fn start_durable() -> Postgres {
        Self::start_with(true, None, &[])
    }

    /// A cluster that accepts TCP connections over TLS only, presenting `pair`.
    pub fn start_tls(pair: &crate::certs::Pair) -> Postgres {
        Self::start_with(false, Some(pair), &[])
    }

    /// A test cluster that also counts every statement's calls, rows and time (the
    /// `pg_stat_statements` extension, created in `rapport`), for benchmarks to profile.
    pub fn start_observed() -> Postgres {
        let pg = Self::start_with(
            false,
            None,
            &[
                "shared_preload_libraries=pg_stat_statements",
                "track_io_timing=on",
            ],
        );
        pg.query("CREATE EXTENSION pg_stat_statements");
        pg
    }

    /// The process id of the postmaster, the parent of every backend.
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
    }

    fn start_with(fsync: bool, tls: Option<&crate::certs::Pair>, extra: &[&str]) -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("rapport-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let root = is_root();
        let as_owner = |program: &Path| {
            if root {
                let mut c = Command::new("runuser");
                c.arg("-u").arg("postgres").arg("--").arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        if root {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot hand the temp dir to the postgres user"
            );
        }
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut settings: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        if let Some(pair) = tls {
            // The server reads its key only when the postgres user owns it, alone.
            let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
            std::fs::copy(&pair.cert, &cert).expect("copy the certificate");
            std::fs::copy(&pair.key, &key).expect("copy the key");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod the key");
            if root {
                for f in [&cert, &key] {
                    let status = Command::new("chown").arg("postgres:").arg(f).status();
                    assert!(status.is_ok_and(|s| s.success()), "chown {}", f.display());
                }
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("write pg_hba.conf");
            settings.extend([
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", cert.display()),
                format!("ssl_key_file={}", key.display()),
            ]);
        }
        let port = free_port();
        let mut child = as_owner(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                "-c",
            ])
            .arg(if fsync { "fsync=on" } else { "fsync=off" })
            .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        wait_for_port(port, "postgres", &mut child);
        let mut pg = Postgres { child, dir, port };
        let created = (0..50).any(|_| {
            let ok = pg.psql("postgres", "CREATE DATABASE rapport").is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(100));
            }
            ok
        });
        assert!(created, "cannot create the test database");
        pg.port = port;
        pg
    }

    /// URL of the `rapport` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/rapport", self.port)
    }

    /// What `sql` answers in the `rapport` database, one row per line, columns separated
    /// by `|`.
    pub fn query(&self, sql: &str) -> String {
        self.psql("rapport", sql)
            .unwrap_or_else(|e| panic!("psql failed: {sql}: {e}"))
    }

    /// Runs `sql` in `database` through psql: its output, or why it failed.
    fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        let out = Command::new(pg_bin().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-At", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Signal the postmaster itself (as root, `runuser` is its parent and does not forward
        // signals): SIGINT is PostgreSQL's fast shutdown.
        let postmaster = self
            .postmaster_pid()
            .unwrap_or_else(|| self.child.id())
            .to_string();
        let _ = Command::new("kill").arg("-INT").arg(&postmaster).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").arg("-KILL").arg(&postmaster).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server of its own, without persistence.
pub struct Redis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// Served over TLS only, with this certificate, when set.
    tls: Option<crate::certs::Pair>,
}

impl Redis {
    /// The server's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts redis-server on a free port.
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// Starts redis-server taking TLS connections only (`rediss://`), presenting `pair`.
    pub fn start_tls(pair: &crate::certs::Pair) -> Redis {
        Self::start_with(Some(pair.clone()))
    }

    fn start_with(tls: Option<crate::certs::Pair>) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("rapport-redis-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let child = Self::spawn(dir.path(), port, tls.as_ref());
        Redis {
            child: Some(child),
            dir,
            port,
            tls,
        }
    }

    fn spawn(dir: &Path, port: u16, tls: Option<&crate::certs::Pair>) -> Child {
        let mut cmd = Command::new("redis-server");
        match tls {
            None => cmd.arg("--port").arg(port.to_string()),
            Some(pair) => cmd
                .args(["--port", "0", "--tls-auth-clients", "no", "--tls-port"])
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(&pair.cert)
                .arg("--tls-key-file")
                .arg(&pair.key),
        };
        let mut child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (make test installs it)");
        wait_for_port(port, "redis-server", &mut child);
        child
    }

    /// URL of the server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the server (to test a Redis outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(Self::spawn(self.dir.path(), self.port, self.tls.as_ref()));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
