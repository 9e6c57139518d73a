//! Support for Keel's integration suite: the backends, a fresh database per
//! test, and a runner that gives every test body to every backend.
//!
//! Backends are found at start-up: SQLite always; PostgreSQL at
//! `KEEL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and MySQL/MariaDB at `KEEL_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`)
//! when a server answers there. A backend without a server is skipped, and
//! its tests are reported as ignored, unless `KEEL_TEST_REQUIRE` names it
//! (`all`, or a comma-separated list such as `postgres,mysql`): then the run fails.

pub mod entities;
pub mod otlp;
mod pg;
pub mod tls;

pub use pg::PgCluster;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use keel::{Keel, KeelBuilder, KeelConfig};
use sea_orm::{ConnectionTrait, Database, DbBackend};

/// `keel_audit` as an older Keel made it on MySQL / MariaDB: the server's
/// collation, whole-second times.
pub const OLDER_MYSQL_AUDIT_TABLE: &str = "CREATE TABLE keel_audit (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
     entity VARCHAR(64) NOT NULL, entity_id VARCHAR(128) NOT NULL, action VARCHAR(16) NOT NULL, \
     actor VARCHAR(255) NOT NULL, tenant VARCHAR(255) NULL, request_id VARCHAR(128) NOT NULL, \
     at TIMESTAMP NOT NULL, changes JSON NOT NULL)";

/// A database the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file per test.
    Sqlite,
    /// A PostgreSQL database per test.
    Postgres,
    /// A MySQL / MariaDB database per test.
    MySql,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MySql];

    /// Short name, used in test names.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    fn admin_url(self) -> String {
        let (var, default) = match self {
            Backend::Sqlite => return String::new(),
            Backend::Postgres => (
                "KEEL_TEST_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            Backend::MySql => ("KEEL_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
        };
        std::env::var(var).unwrap_or_else(|_| default.to_owned())
    }

    fn required(self) -> bool {
        let required = std::env::var("KEEL_TEST_REQUIRE").unwrap_or_default();
        required
            .split(',')
            .map(str::trim)
            .any(|r| r == "all" || r == self.name() || (self == Backend::MySql && r == "mariadb"))
    }
}

/// Whether a backend can be used, and why not.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The backend.
    pub backend: Backend,
    /// `Err(reason)` when it cannot be used.
    pub status: Result<String, String>,
}

/// Finds which backends answer, drops databases left by an earlier run that
/// crashed, and prints what will run. Panics if a required backend is missing.
pub fn probe_backends() -> Vec<Probe> {
    let rt = runtime();
    let probes: Vec<Probe> = Backend::ALL
        .iter()
        .map(|&backend| Probe {
            backend,
            status: rt.block_on(probe(backend)),
        })
        .collect();
    eprintln!("keel integration suite, backends:");
    for p in &probes {
        match &p.status {
            Ok(what) => eprintln!("  {:<9} ok       {what}", p.backend.name()),
            Err(why) => eprintln!("  {:<9} SKIPPED  {why}", p.backend.name()),
        }
    }
    let missing: Vec<&str> = probes
        .iter()
        .filter(|p| p.status.is_err() && p.backend.required())
        .map(|p| p.backend.name())
        .collect();
    assert!(
        missing.is_empty(),
        "KEEL_TEST_REQUIRE asks for {missing:?}, which cannot be reached (see above)"
    );
    probes
}

async fn probe(backend: Backend) -> Result<String, String> {
    if backend == Backend::Sqlite {
        return Ok("a file per test in the temporary directory".into());
    }
    let url = backend.admin_url();
    let mut options = sea_orm::ConnectOptions::new(url.clone());
    options
        .connect_timeout(Duration::from_secs(3))
        .max_connections(1)
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .map_err(|e| format!("no server at {} ({})", redact(&url), keel::Error::from(e)))?;
    // Databases of a run that died before cleaning up.
    let stale: Vec<String> = match backend {
        Backend::Postgres => db
            .query_all_raw(sea_orm::Statement::from_string(
                DbBackend::Postgres,
                "SELECT datname AS name FROM pg_database WHERE datname LIKE 'keel\\_t\\_%'",
            ))
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|r| r.try_get::<String>("", "name").ok())
            .collect(),
        _ => db
            .query_all_raw(sea_orm::Statement::from_string(
                DbBackend::MySql,
                "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'keel\\_t\\_%'",
            ))
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|r| r.try_get::<String>("", "name").ok())
            .collect(),
    };
    for name in stale {
        let _ = db.execute_unprepared(&drop_sql(backend, &name)).await;
    }
    let _ = db.close().await;
    Ok(format!("a database per test on {}", redact(&url)))
}

fn redact(url: &str) -> String {
    // user:password@ -> user@
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn drop_sql(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        _ => format!("DROP DATABASE IF EXISTS `{name}`"),
    }
}

/// A fresh database for one test.
pub struct TestDb {
    /// Its backend.
    pub backend: Backend,
    /// The URL to connect to it.
    pub url: String,
    name: String,
}

impl TestDb {
    /// Creates an empty database.
    pub async fn create(backend: Backend) -> TestDb {
        let name = format!("keel_t_{}", uuid::Uuid::new_v4().simple());
        let url = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join("keel-tests");
                std::fs::create_dir_all(&dir).expect("temporary directory");
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.join(format!("{name}.db")).display()
                )
            }
            Backend::Postgres | Backend::MySql => {
                let admin = backend.admin_url();
                let db = Database::connect(admin.clone())
                    .await
                    .expect("admin connection");
                let create = match backend {
                    Backend::Postgres => format!("CREATE DATABASE \"{name}\""),
                    // The server's defaults, as a user creates a database
                    // (MariaDB: utf8mb4_general_ci, case- and accent-blind).
                    _ => format!("CREATE DATABASE `{name}`"),
                };
                db.execute_unprepared(&create)
                    .await
                    .expect("create test database");
                let _ = db.close().await;
                // The admin URL's parameters (`sslmode`, ...) carry over.
                let (admin, query) = admin.split_once('?').unwrap_or((&admin, ""));
                let base = admin.trim_end_matches('/');
                let base = match backend {
                    Backend::Postgres => base.rsplit_once('/').map_or(base, |(b, _)| b),
                    _ => base,
                };
                if query.is_empty() {
                    format!("{base}/{name}")
                } else {
                    format!("{base}/{name}?{query}")
                }
            }
        };
        TestDb { backend, url, name }
    }

    /// Removes the database.
    pub async fn destroy(self) {
        match self.backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir()
                    .join("keel-tests")
                    .join(format!("{}.db", self.name));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            backend => {
                if let Ok(db) = Database::connect(backend.admin_url()).await {
                    let _ = db.execute_unprepared(&drop_sql(backend, &self.name)).await;
                    let _ = db.close().await;
                }
            }
        }
    }

    /// A builder for a Keel on this database, with the suite's defaults.
    pub fn builder(&self) -> KeelBuilder {
        KeelBuilder::from_config(KeelConfig::new(self.url.clone()))
            .max_connections(8)
            .min_connections(0)
            .page_token_secret("integration-suite-secret-0123456789abcdef")
    }
}

/// What a test body gets: a Keel on a fresh database with every table created.
pub struct Env {
    /// The Keel under test.
    pub keel: Keel,
    /// Its database.
    pub db: TestDb,
}

impl Env {
    /// The backend.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }
}

/// Creates every table of the suite.
pub async fn create_tables(keel: &Keel) {
    use entities::*;
    keel.create_table(product::Entity).await.expect("products");
    keel.create_table(note::Entity).await.expect("notes");
    keel.create_table(country::Entity).await.expect("countries");
    keel.create_table(tag::Entity).await.expect("tags");
    keel.create_table(review::Entity).await.expect("reviews");
    keel.create_table(ticket::Entity).await.expect("tickets");
    keel.create_table(label::Entity).await.expect("labels");
    keel.create_table(invoice::Entity).await.expect("invoices");
    keel.create_table(memo::Entity).await.expect("memos");
    keel.create_table(project::Entity).await.expect("projects");
    keel.create_table(article::Entity).await.expect("articles");
    keel.db()
        .execute_unprepared(gadget::ddl(keel.backend()))
        .await
        .expect("gadgets");
}

/// A test body.
pub type Body = fn(Env) -> Pin<Box<dyn Future<Output = ()> + Send>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `body` on a fresh database of `backend`, then removes the database,
/// whether the body passed or panicked.
pub fn run(backend: Backend, body: Body) -> Result<(), String> {
    runtime().block_on(async move {
        let db = TestDb::create(backend).await;
        let url = db.url.clone();
        let keel = db
            .builder()
            .connect()
            .await
            .map_err(|e| format!("connect to {url}: {e}"))?;
        create_tables(&keel).await;
        let name = db.name.clone();
        let outcome = tokio::spawn(body(Env {
            keel,
            db: TestDb {
                backend,
                url,
                name: name.clone(),
            },
        }))
        .await;
        TestDb {
            backend,
            url: String::new(),
            name,
        }
        .destroy()
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "the test panicked".into());
                Err(message)
            }
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Registers test bodies: `cases![crud_round_trip, ...]` makes `CASES`.
#[macro_export]
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every test body of this file, by name.
        pub(crate) const CASES: &[(&str, $crate::Body)] = &[
            $((stringify!($name), |env| Box::pin($name(env)))),*
        ];
    };
}

/// Every row `query` matches, following page tokens to the end.
pub async fn all_pages<E: keel::Resource>(
    service: &keel::BaseService<E>,
    ctx: &keel::Context,
    query: keel::ListQuery,
) -> Vec<E::Model> {
    let mut rows = Vec::new();
    let mut query = query;
    loop {
        let page = service.list(ctx, &query).await.expect("list");
        rows.extend(page.items);
        match page.next_page_token {
            Some(token) => query = query.page_token(token),
            None => return rows,
        }
    }
}

/// Asserts `err` is `VERSION_CONFLICT` with these versions.
#[track_caller]
pub fn assert_version_conflict(err: &keel::Error, expected: i64, current: i64) {
    match err {
        keel::Error::VersionConflict {
            expected: e,
            current: c,
        } if (*e, *c) == (expected, current) => {}
        other => panic!(
            "expected VERSION_CONFLICT {{expected {expected}, current {current}}}, got {other:?}"
        ),
    }
}

/// Every event the bus of `keel` delivers to a subscriber `name` that wants
/// `pattern`, in delivery order.
pub fn collect_events(
    keel: &Keel,
    name: &str,
    pattern: &str,
) -> std::sync::Arc<std::sync::Mutex<Vec<keel::event::Event>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    keel.events()
        .subscribe(keel::event::Subscription::new(
            name,
            pattern,
            move |event| {
                let sink = sink.clone();
                async move {
                    sink.lock().expect("event sink").push(event);
                    Ok(())
                }
            },
        ))
        .expect("subscribe");
    seen
}

/// The Redis the cache tests use: `KEEL_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("KEEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Whether Redis answers at [`redis_url`]. When it does not, the cache tests
/// skip, unless `KEEL_TEST_REQUIRE` asks for `redis` (or `all`): then they fail.
pub fn redis_available() -> bool {
    let url = redis_url();
    let reachable = url
        .strip_prefix("redis://")
        .map(|rest| rest.rsplit_once('@').map_or(rest, |(_, host)| host))
        .map(|host| host.split('/').next().unwrap_or(host).to_owned())
        .and_then(|host| std::net::TcpStream::connect(host).ok())
        .is_some();
    if !reachable {
        let required = std::env::var("KEEL_TEST_REQUIRE").unwrap_or_default();
        assert!(
            !required
                .split(',')
                .any(|r| matches!(r.trim(), "all" | "redis")),
            "KEEL_TEST_REQUIRE asks for redis, which does not answer at {url}"
        );
        eprintln!("SKIPPED: no Redis at {url}");
    }
    reachable
}

/// A Keel on the test's database with a Redis cache tier under `prefix`
/// (two Keels with one prefix are two instances of one service).
pub async fn keel_with_redis(env: &Env, redis: &str, prefix: &str) -> Keel {
    let mut cache = keel::cache::CacheConfig::default();
    cache.redis_url = Some(redis.to_owned());
    cache.prefix = prefix.to_owned();
    env.db
        .builder()
        .cache(cache)
        .connect()
        .await
        .expect("connect with a cache")
}

/// A redis-server of a test's own, on a loopback port, stopped when dropped.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// A free loopback port.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    /// Starts `redis-server` on `port` (nothing kept on disk) and waits until
    /// it answers; `None` when redis-server is not installed.
    pub fn start(port: u16) -> Option<RedisServer> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer {
            port,
            child: Some(child),
        })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (kill, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the suite's NATS server answers on `127.0.0.1:4222`. When it does
/// not, the tests that need it skip, unless `KEEL_TEST_REQUIRE` asks for
/// `nats` (or `all`): then they fail.
pub fn nats_available() -> bool {
    let up = std::net::TcpStream::connect("127.0.0.1:4222").is_ok();
    if !up {
        let required = std::env::var("KEEL_TEST_REQUIRE").unwrap_or_default();
        assert!(
            !required
                .split(',')
                .any(|r| matches!(r.trim(), "all" | "nats")),
            "KEEL_TEST_REQUIRE asks for nats, which does not answer at 127.0.0.1:4222"
        );
        eprintln!("SKIPPED: no NATS at 127.0.0.1:4222");
    }
    up
}

/// A nats-server (with JetStream) of a test's own, on a free loopback port
/// with its own store directory; stopped, and its directory removed, when
/// dropped.
#[derive(Debug)]
pub struct NatsServer {
    /// Its port.
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl NatsServer {
    /// Starts one on a free port; `None` when nats-server is not installed
    /// (a failure instead if `KEEL_TEST_REQUIRE` asks for `nats`).
    pub fn start() -> Option<NatsServer> {
        let dir = std::env::temp_dir().join(format!("keel-nats-{}", uuid::Uuid::new_v4().simple()));
        let mut server = NatsServer {
            port: RedisServer::free_port(),
            dir,
            child: None,
        };
        if server.restart() {
            Some(server)
        } else {
            let required = std::env::var("KEEL_TEST_REQUIRE").unwrap_or_default();
            assert!(
                !required
                    .split(',')
                    .any(|r| matches!(r.trim(), "all" | "nats")),
                "KEEL_TEST_REQUIRE asks for nats, and nats-server is not installed"
            );
            eprintln!("SKIPPED: nats-server is not installed");
            None
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and store (after [`stop`](Self::stop));
    /// false when nats-server cannot be run.
    pub fn restart(&mut self) -> bool {
        let Ok(child) = std::process::Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops it (kill, as a crash would); its store stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `future` `polls` times (yielding to the runtime in between, so
/// that its I/O makes progress), then drops it: a caller that goes away
/// mid-request, as a closed connection or a request timeout does.
pub async fn drop_after<F: std::future::Future>(future: F, polls: usize) {
    let mut future = std::pin::pin!(future);
    for _ in 0..polls {
        let ready =
            std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready()))
                .await;
        if ready {
            return;
        }
        tokio::task::yield_now().await;
    }
}
