//! Test support: throwaway PostgreSQL and Redis servers, the services as real processes on
//! free loopback ports, an OTLP trace receiver, and gRPC clients with the right credentials.

// Tests date their events by the system clock, as producers do.
#![allow(clippy::disallowed_methods)]

pub mod certs;
pub mod otlp;
pub mod scenario;
pub mod servers;

use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

pub use servers::{Postgres, Redis};

/// The development API key every test platform accepts (tenant `dev`).
pub const API_KEY: &str = rapport_server::auth::DEV_API_KEY;
/// The key the services use with each other in the development set-up.
pub const SERVICE_KEY: &str = rapport_server::auth::DEV_SERVICE_KEY;

/// The Python of the tests' virtual environment (`make test` creates it), or
/// `RAPPORT_PYTHON`.
pub fn python() -> PathBuf {
    std::env::var("RAPPORT_PYTHON")
        .map_or_else(|_| repo_root().join(".venv/bin/python"), Into::into)
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The directory of the workspace's built binaries (`target/debug`, or `target/release` for
/// a benchmark built with `--release`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    // target/debug/deps/<test> → target/debug; target/release/<bench> → target/release
    let dir = exe.parent().expect("executable directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary; fails with advice when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (make test does)",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A child process killed when dropped, with its output collected to a log file.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd`, waiting until it prints `ready` on stdout (within 60 s).
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path, ready: &str) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        cmd.stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            let mut seen = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !seen && line.contains(&ready) {
                    seen = true;
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!(
                "{name} did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// Stops the process with SIGTERM and waits for it (graceful shutdown); answers how long
    /// it took to exit, or `None` when it had to be killed after 30 s.
    pub fn terminate(&mut self) -> Option<Duration> {
        let mut child = self.child.take()?;
        let asked = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        while asked.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(asked.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The operating-system process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.name);
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
    }
}

/// The Python webhook receiver (`tests/python/webhook_receiver.py`) in `dir`, answering each
/// path with its scripted statuses (JSON, `{"/path": [500, 200]}`; 200 otherwise): its
/// process, its base URL and its request log (one JSON line a request).
pub fn webhook_receiver(dir: &Path, script: &str) -> (Proc, String, PathBuf) {
    receiver(dir, script, None)
}

/// [`webhook_receiver`] over HTTPS, presenting `tls`.
pub fn webhook_receiver_tls(
    dir: &Path,
    script: &str,
    tls: &certs::Pair,
) -> (Proc, String, PathBuf) {
    receiver(dir, script, Some(tls))
}

fn receiver(dir: &Path, script: &str, tls: Option<&certs::Pair>) -> (Proc, String, PathBuf) {
    let port_file = dir.join("port");
    let log = dir.join("requests.jsonl");
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/python/webhook_receiver.py"))
        .arg("serve")
        .arg(&port_file)
        .arg(&log)
        .arg(script);
    if let Some(pair) = tls {
        cmd.arg(&pair.cert).arg(&pair.key);
    }
    let proc = Proc::spawn("receiver", cmd, dir, "listening");
    let port = std::fs::read_to_string(&port_file).expect("the receiver wrote its port");
    let scheme = if tls.is_some() { "https" } else { "http" };
    (proc, format!("{scheme}://127.0.0.1:{}", port.trim()), log)
}

/// The four services, by which tests start, stop and address them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ingestion,
    Scoring,
    Segmentation,
    Alerting,
}

impl Service {
    /// Every service, in the order data flows through them.
    pub const ALL: [Service; 4] = [
        Service::Ingestion,
        Service::Scoring,
        Service::Segmentation,
        Service::Alerting,
    ];

    /// Its name: its binary is `rapport-<name>`, its process and log are named so.
    pub fn name(self) -> &'static str {
        match self {
            Service::Ingestion => "ingestion",
            Service::Scoring => "scoring",
            Service::Segmentation => "segmentation",
            Service::Alerting => "alerting",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Addresses of the four services.
#[derive(Debug, Clone)]
pub struct Addrs {
    pub ingestion: String,
    pub scoring: String,
    pub segmentation: String,
    pub alerting: String,
    /// Where each service serves its Prometheus metrics, when it does.
    pub metrics: std::collections::BTreeMap<Service, String>,
}

impl Addrs {
    /// The address of `service`.
    pub fn of(&self, service: Service) -> &String {
        match service {
            Service::Ingestion => &self.ingestion,
            Service::Scoring => &self.scoring,
            Service::Segmentation => &self.segmentation,
            Service::Alerting => &self.alerting,
        }
    }

    /// The address of `service`, to change.
    pub fn of_mut(&mut self, service: Service) -> &mut String {
        match service {
            Service::Ingestion => &mut self.ingestion,
            Service::Scoring => &mut self.scoring,
            Service::Segmentation => &mut self.segmentation,
            Service::Alerting => &mut self.alerting,
        }
    }

    /// Four free loopback addresses, and four more for their metrics, all different.
    pub fn free() -> Addrs {
        let mut drawn = free_addrs(8).into_iter();
        let mut a = || drawn.next().expect("eight drawn");
        Addrs {
            ingestion: a(),
            scoring: a(),
            segmentation: a(),
            alerting: a(),
            metrics: Service::ALL.into_iter().map(|s| (s, a())).collect(),
        }
    }
}

/// `n` free loopback addresses, all different: each port is held until all are drawn (a
/// port drawn and released may otherwise be drawn again before its server binds it).
pub fn free_addrs(n: usize) -> Vec<String> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("bound").to_string())
        .collect()
}

/// The text a service's `/metrics` endpoint serves.
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    conn.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("send the request");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("read the answer");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// gRPC clients of a running platform.
#[derive(Clone)]
pub struct Clients {
    pub ingestion: IngestionServiceClient<Channel>,
    pub scoring: ScoringServiceClient<Channel>,
    pub segmentation: SegmentationServiceClient<Channel>,
    pub alerting: AlertingServiceClient<Channel>,
}

/// A lazily connected channel to `addr`.
pub fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid address")
        .connect_lazy()
}

impl Clients {
    /// Clients of the services at `addrs`.
    pub fn new(addrs: &Addrs) -> Clients {
        Clients {
            ingestion: IngestionServiceClient::new(channel(&addrs.ingestion)),
            scoring: ScoringServiceClient::new(channel(&addrs.scoring)),
            segmentation: SegmentationServiceClient::new(channel(&addrs.segmentation)),
            alerting: AlertingServiceClient::new(channel(&addrs.alerting)),
        }
    }
}

/// A request authenticated with the development key, with a deadline.
pub fn req<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(30));
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {API_KEY}").parse().expect("ascii"),
    );
    r
}

/// A request with `key` (another tenant's, a managed key…) and a deadline of 10 s.
pub fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(10));
    if let Ok(v) = format!("Bearer {key}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// A request as the services make them of each other: the service key, acting for the dev
/// tenant, with a deadline.
pub fn service_req<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(30));
    let md = r.metadata_mut();
    md.insert(
        "authorization",
        format!("Bearer {SERVICE_KEY}").parse().expect("ascii"),
    );
    md.insert(
        rapport_server::auth::TENANT_HEADER,
        rapport_server::auth::DEV_TENANT.parse().expect("ascii"),
    );
    r
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which storage and cache the distributed services use.
pub struct Backing<'a> {
    pub database_url: &'a str,
    pub redis_url: Option<&'a str>,
    /// OTLP endpoint for trace export, if any.
    pub otlp: Option<&'a str>,
}

impl<'a> Backing<'a> {
    /// The database at `database_url` alone: no Redis, no trace export.
    pub fn database(database_url: &'a str) -> Backing<'a> {
        Backing {
            database_url,
            redis_url: None,
            otlp: None,
        }
    }
}

/// Starts one service binary (`rapport-<service>`) with the peers of `addrs`.
pub fn start_service(
    service: Service,
    addrs: &Addrs,
    backing: &Backing<'_>,
    log_dir: &Path,
) -> Proc {
    start_service_with(service, addrs, backing, log_dir, &[])
}

/// [`start_service`] with extra environment variables (the service's own settings).
pub fn start_service_with(
    service: Service,
    addrs: &Addrs,
    backing: &Backing<'_>,
    log_dir: &Path,
    env: &[(&str, &str)],
) -> Proc {
    start_replica(service.name(), service, addrs, backing, log_dir, env)
}

/// One replica of `service`, named `name` (its log is `name.log`): it listens on its own
/// field of `addrs` and calls the peers the other fields name (one address or a list).
pub fn start_replica(
    name: &str,
    service: Service,
    addrs: &Addrs,
    backing: &Backing<'_>,
    log_dir: &Path,
    env: &[(&str, &str)],
) -> Proc {
    let mut cmd = Command::new(bin(&format!("rapport-{service}")));
    cmd.arg("--listen").arg(addrs.of(service));
    if let Some(metrics) = addrs.metrics.get(&service) {
        cmd.arg("--metrics-listen").arg(metrics);
    }
    match service {
        Service::Ingestion => {
            cmd.arg("--scoring-addr").arg(&addrs.scoring);
        }
        Service::Segmentation => {
            cmd.arg("--scoring-addr")
                .arg(&addrs.scoring)
                .arg("--ingestion-addr")
                .arg(&addrs.ingestion);
        }
        Service::Scoring => {
            cmd.arg("--ingestion-addr")
                .arg(&addrs.ingestion)
                .arg("--alerting-addr")
                .arg(&addrs.alerting);
            if let Some(redis) = backing.redis_url {
                cmd.arg("--redis-url").arg(redis);
            }
        }
        Service::Alerting => {
            cmd.arg("--ingestion-addr").arg(&addrs.ingestion);
        }
    }
    cmd.env("DATABASE_URL", backing.database_url)
        .env("RAPPORT_ALLOW_DEV_KEYS", "true")
        .env("RUST_LOG", "info")
        .env_remove("REDIS_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    if let Some(otlp) = backing.otlp {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    }
    cmd.envs(env.iter().copied());
    Proc::spawn(name, cmd, log_dir, "listening on")
}

/// The four services as separate processes.
pub struct Distributed {
    pub addrs: Addrs,
    pub procs: Vec<Proc>,
}

impl Distributed {
    /// Starts alerting, scoring, segmentation and ingestion, in that order.
    pub fn start(backing: &Backing<'_>, log_dir: &Path) -> Distributed {
        Distributed::start_scaled(backing, log_dir, 1)
    }

    /// [`Distributed::start`] with `scoring` replicas of scoring (named `scoring`,
    /// `scoring-2`, …), which every peer calls in turn; `addrs.scoring` is the first one's.
    pub fn start_scaled(backing: &Backing<'_>, log_dir: &Path, scoring: usize) -> Distributed {
        let addrs = Addrs::free();
        let replicas: Vec<String> = std::iter::once(addrs.scoring.clone())
            .chain((1..scoring).map(|_| format!("127.0.0.1:{}", free_port())))
            .collect();
        let peers = Addrs {
            scoring: replicas.join(","),
            ..addrs.clone()
        };
        let mut procs = vec![start_service(Service::Alerting, &peers, backing, log_dir)];
        for (i, own) in replicas.iter().enumerate() {
            let name = match i {
                0 => "scoring".to_owned(),
                i => format!("scoring-{}", i + 1),
            };
            let mut listening = peers.clone();
            *listening.of_mut(Service::Scoring) = own.clone();
            procs.push(start_replica(
                &name,
                Service::Scoring,
                &listening,
                backing,
                log_dir,
                &[],
            ));
        }
        for service in [Service::Segmentation, Service::Ingestion] {
            procs.push(start_service(service, &peers, backing, log_dir));
        }
        Distributed { addrs, procs }
    }

    /// The four services on a throwaway PostgreSQL and redis-server, without trace export.
    pub fn on_postgres_and_redis(pg: &Postgres, redis: &Redis, log_dir: &Path) -> Distributed {
        let (database_url, redis_url) = (pg.url(), redis.url());
        Distributed::start(
            &Backing {
                database_url: &database_url,
                redis_url: Some(&redis_url),
                otlp: None,
            },
            log_dir,
        )
    }

    /// The process of `service`.
    pub fn proc(&mut self, service: Service) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == service.name())
            .expect("known service")
    }
}

/// `rapport up` in a temporary directory, on free ports.
pub struct Embedded {
    pub addrs: Addrs,
    /// The console's address (`host:port`).
    pub console: String,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

/// The local platform file `rapport up` writes.
#[derive(serde::Deserialize)]
struct LocalFile {
    ingestion: String,
    scoring: String,
    segmentation: String,
    alerting: String,
    console: String,
}

impl Embedded {
    /// Starts `rapport up --port-base 0` with its data in a fresh directory.
    pub fn start() -> Embedded {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(bin("rapport"));
        cmd.arg("up")
            .arg("--port-base")
            .arg("0")
            .current_dir(dir.path())
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL");
        let proc = Proc::spawn("rapport-up", cmd, dir.path(), "Stop with Ctrl-C");
        let text = std::fs::read_to_string(dir.path().join(".rapport/local.toml"))
            .expect("rapport up wrote local.toml");
        let local: LocalFile = toml::from_str(&text).expect("valid local.toml");
        let addrs = Addrs {
            ingestion: local.ingestion,
            scoring: local.scoring,
            segmentation: local.segmentation,
            alerting: local.alerting,
            metrics: Default::default(),
        };
        Embedded {
            addrs,
            console: local.console,
            proc,
            dir,
        }
    }

    /// Runs the command line against this platform (found through the file `rapport up`
    /// wrote, not the environment) and returns what it printed; fails the test when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(bin("rapport"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RAPPORT_API_KEY")
            .env_remove("RAPPORT_INGESTION_ADDR")
            .env_remove("RAPPORT_SCORING_ADDR")
            .env_remove("RAPPORT_SEGMENTATION_ADDR")
            .env_remove("RAPPORT_ALERTING_ADDR")
            .output()
            .expect("run rapport");
        assert!(
            out.status.success(),
            "rapport {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
