//! TLS to every server, against servers of the test's own that speak TLS
//! only (see `keel_tests::tls`): PostgreSQL (`hostssl`), MariaDB
//! (`require_secure_transport`), Redis (`--port 0 --tls-port`) and NATS (a
//! `tls` block), with certificates the test makes.
//!
//! For each: with the right authority the CRUD, cache and outbox paths
//! work over TLS; a wrong authority or a wrong host name stops
//! `Keel::connect` within seconds, with an error naming the server and
//! the certificate problem; a plaintext URL to the TLS-only server fails
//! clearly.

use std::time::{Duration, Instant};

use keel::outbox::{EventsConfig, Relay, SinkKind};
use keel::tls::TlsConfig;
use keel::{Context, Keel, KeelConfig, ListQuery};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::tls::{Certs, TlsMariaDb, TlsNats, TlsPostgres, TlsRedis};

const SECRET: &str = "tls-suite-secret-0123456789abcdef-0123";

/// The error and its causes, one after the other.
fn chain(err: &keel::Error) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(" <- ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `Keel::connect` with this configuration, timed: every failure must come
/// back within seconds (no hang), and never as a panic.
async fn connect(config: KeelConfig) -> Result<Keel, keel::Error> {
    let started = Instant::now();
    let result = Keel::connect(config).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "connect took {:?}",
        started.elapsed()
    );
    result
}

fn config(database_url: &str, tls: TlsConfig) -> KeelConfig {
    let mut config = KeelConfig::new(database_url);
    config.tls = tls;
    config.pool.max_connections = 4;
    config.pool.min_connections = 0;
    config.pool.acquire_timeout = Duration::from_secs(5);
    config.page_token_secret = Some(keel::Secret::new(SECRET));
    config
}

/// A SQLite file of the test's own.
fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join("keel-tests");
    std::fs::create_dir_all(&dir).unwrap();
    format!(
        "sqlite://{}?mode=rwc",
        dir.join(format!("tls-{}.db", uuid::Uuid::new_v4().simple()))
            .display()
    )
}

/// Asserts `err` (a start-up failure) names `server` and says `problem`.
#[track_caller]
fn assert_names(err: &keel::Error, server: &str, problem: &str) {
    let text = chain(err);
    eprintln!("refused as expected: {text}");
    assert_eq!(err.code(), "UNAVAILABLE", "{text}");
    assert!(
        text.contains(server) && text.contains(problem),
        "expected {server:?} and {problem:?} in: {text}"
    );
}

/// Creates, reads (twice: the second from the cache), updates, lists and
/// deletes a product; with an outbox, relays its events.
async fn crud_cache_outbox(keel: &Keel) {
    keel_tests::create_tables(keel).await;
    let products = keel.service::<product::Entity>();
    let ctx = Context::actor("tls");
    let created = products
        .create(&ctx, NewProduct::new("TLS-1", 100))
        .await
        .unwrap();
    let hits = keel.cache().stats().l1_hits + keel.cache().stats().l2_hits;
    assert_eq!(products.get(&ctx, created.id).await.unwrap(), created);
    assert_eq!(products.get(&ctx, created.id).await.unwrap(), created);
    assert!(
        keel.cache().stats().l1_hits + keel.cache().stats().l2_hits > hits,
        "the second read is a cache hit"
    );
    let updated = products
        .update(&ctx, created.id, ProductPatch::default().price_cents(120))
        .await
        .unwrap();
    assert_eq!(updated.price_cents, 120);
    assert_eq!(
        products.get(&ctx, created.id).await.unwrap().price_cents,
        120,
        "never stale after the write"
    );
    let page = products
        .list(&ctx, &ListQuery::new().filter("price_cents >= 100"))
        .await
        .unwrap();
    assert_eq!(page.items, vec![updated]);
    products.delete(&ctx, created.id).await.unwrap();
    if keel.outbox_enabled() {
        let relay = Relay::new(keel).unwrap();
        let started = Instant::now();
        let mut sent = 0;
        while sent < 3 {
            sent += relay.run_once().await.unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{:?}",
                relay.stats()
            );
        }
        assert_eq!(relay.stats().failed, 0, "{:?}", relay.stats());
    }
}

/// The messages of a JetStream stream, read over TLS with `ca`.
async fn stream_messages(url: &str, ca: &std::path::Path, stream: &str) -> u64 {
    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(ca.to_path_buf())
        .connect(url)
        .await
        .expect("connect to NATS over TLS");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(stream)
        .await
        .expect("the stream exists");
    stream.info().await.expect("stream info").state.messages
}

/// PostgreSQL, Redis and NATS over TLS at once: the authority in the URL
/// (`sslrootcert`) for the database and in `KEEL_TLS_CA_FILE` for Redis
/// and NATS; then each by `KEEL_TLS_CA_FILE` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_redis_and_nats_over_tls() {
    let Some(certs) = Certs::generate() else {
        return;
    };
    let (Some(pg), Some(redis), Some(nats)) = (
        TlsPostgres::start(&certs),
        TlsRedis::start(&certs, false),
        TlsNats::start(&certs),
    ) else {
        return;
    };
    let ca = certs.ca.display().to_string();
    let mut with_all = config(
        &pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        TlsConfig::default().ca_file(&certs.ca),
    );
    with_all.cache.redis_url = Some(redis.url("rediss", "localhost"));
    with_all.events = EventsConfig::with_sink(SinkKind::Nats {
        url: nats.url("tls", "localhost"),
        stream: "TLSPG".into(),
    });
    let keel = connect(with_all)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let row = sea_orm::ConnectionTrait::query_one_raw(
        keel.db(),
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        row.try_get::<bool>("", "ssl").unwrap(),
        "the connection is TLS"
    );
    crud_cache_outbox(&keel).await;
    assert_eq!(
        stream_messages(&nats.url("tls", "localhost"), &certs.ca, "TLSPG").await,
        3,
        "created, updated, deleted"
    );
    keel.close().await.unwrap();

    // `KEEL_TLS_CA_FILE` alone for the database too.
    let keel = connect(config(
        &pg.url("localhost", "sslmode=verify-full"),
        TlsConfig::default().ca_file(&certs.ca),
    ))
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(
        keel.service::<product::Entity>()
            .find(&Context::system(), 1)
            .await
            .is_ok()
    );
    keel.close().await.unwrap();

    let server = format!("PostgreSQL at localhost:{}", pg.port);
    let other = certs.other_ca.display().to_string();
    let err = connect(config(
        &pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    assert_names(&err, &server, "not signed by a trusted authority");
    let err = connect(config(
        &pg.url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    assert_names(
        &err,
        &format!("PostgreSQL at 127.0.0.1:{}", pg.port),
        "not valid for this host name",
    );
    // No authority at all: the system's do not know this one.
    let err = connect(config(
        &pg.url("localhost", "sslmode=verify-full"),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    assert_names(&err, &server, "not signed by a trusted authority");
    // Plaintext to a server that accepts TLS only.
    let err = connect(config(
        &pg.url("localhost", "sslmode=disable"),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains(&server)
            && text.contains("no encryption")
            && text.contains("the URL turns TLS off"),
        "{text}"
    );
}

/// MariaDB with `require_secure_transport`: `ssl-mode=VERIFY_IDENTITY` and
/// `ssl-ca` in the URL, or `KEEL_TLS_CA_FILE`; the wrong authority, the
/// wrong host and plaintext are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_over_tls() {
    let Some(certs) = Certs::generate() else {
        return;
    };
    let Some(db) = TlsMariaDb::start(&certs) else {
        return;
    };
    let ca = certs.ca.display().to_string();
    let mut bus = config(
        &db.url(
            "localhost",
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        ),
        TlsConfig::default(),
    );
    bus.events = EventsConfig::with_sink(SinkKind::Bus);
    let keel = connect(bus)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let row = sea_orm::ConnectionTrait::query_one_raw(
        keel.db(),
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SHOW SESSION STATUS LIKE 'Ssl_version'",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let version: String = row.try_get("", "Value").unwrap();
    assert!(version.starts_with("TLS"), "{version}");
    crud_cache_outbox(&keel).await;
    keel.close().await.unwrap();

    let keel = connect(config(
        &db.url("localhost", "ssl-mode=VERIFY_IDENTITY"),
        TlsConfig::default().ca_file(&certs.ca),
    ))
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    keel.close().await.unwrap();

    let server = format!("MySQL at localhost:{}", db.port);
    let other = certs.other_ca.display().to_string();
    let err = connect(config(
        &db.url(
            "localhost",
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={other}"),
        ),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    assert_names(&err, &server, "not signed by a trusted authority");
    let err = connect(config(
        &db.url(
            "127.0.0.1",
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        ),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    assert_names(
        &err,
        &format!("MySQL at 127.0.0.1:{}", db.port),
        "not valid for this host name",
    );
    let err = connect(config(
        &db.url("localhost", "ssl-mode=DISABLED"),
        TlsConfig::default(),
    ))
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains(&server) && text.contains("the URL turns TLS off"),
        "{text}"
    );
}

/// Redis over TLS: the cache with the right authority (and a client
/// certificate where the server asks for one); the wrong authority, the
/// wrong host, a missing client certificate and a plaintext URL stop
/// start-up with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls() {
    let Some(certs) = Certs::generate() else {
        return;
    };
    let (Some(redis), Some(mutual)) = (
        TlsRedis::start(&certs, false),
        TlsRedis::start(&certs, true),
    ) else {
        return;
    };
    let cache = |url: String, tls: TlsConfig| {
        let mut c = config(&sqlite_url(), tls);
        c.cache.redis_url = Some(url);
        c
    };
    let keel = connect(cache(
        redis.url("rediss", "localhost"),
        TlsConfig::default().ca_file(&certs.ca),
    ))
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(keel.cache().has_redis());
    crud_cache_outbox(&keel).await;
    assert!(keel.cache().stats().l2_hits + keel.cache().stats().l1_hits > 0);

    let server = format!("Redis at localhost:{}", redis.port);
    let err = connect(cache(
        redis.url("rediss", "localhost"),
        TlsConfig::default().ca_file(&certs.other_ca),
    ))
    .await
    .unwrap_err();
    assert_names(&err, &server, "not signed by a trusted authority");
    let err = connect(cache(
        redis.url("rediss", "127.0.0.1"),
        TlsConfig::default().ca_file(&certs.ca),
    ))
    .await
    .unwrap_err();
    assert_names(
        &err,
        &format!("Redis at 127.0.0.1:{}", redis.port),
        "not valid for this host name",
    );
    let err = connect(cache(redis.url("redis", "localhost"), TlsConfig::default()))
        .await
        .unwrap_err();
    assert_names(&err, &server, "use a rediss:// URL");

    // A server that asks for a client certificate.
    let with_cert = TlsConfig::default()
        .ca_file(&certs.ca)
        .client_cert(&certs.client_cert, &certs.client_key);
    let keel = connect(cache(mutual.url("rediss", "localhost"), with_cert))
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    crud_cache_outbox(&keel).await;
    let err = connect(cache(
        mutual.url("rediss", "localhost"),
        TlsConfig::default().ca_file(&certs.ca),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE", "{}", chain(&err));
    assert!(
        chain(&err).contains(&format!("Redis at localhost:{}", mutual.port)),
        "{}",
        chain(&err)
    );
}

/// NATS over TLS: the outbox relays to JetStream with the right
/// authority; the wrong one stops start-up. A `nats://` URL to a server
/// that requires TLS is upgraded to TLS (the server says so first), so it
/// is verified the same way: never plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_over_tls() {
    let Some(certs) = Certs::generate() else {
        return;
    };
    let Some(nats) = TlsNats::start(&certs) else {
        return;
    };
    let sink = |url: String, tls: TlsConfig| {
        let mut c = config(&sqlite_url(), tls);
        c.events = EventsConfig::with_sink(SinkKind::Nats {
            url,
            stream: "TLSNATS".into(),
        });
        c
    };
    let keel = connect(sink(
        nats.url("tls", "localhost"),
        TlsConfig::default().ca_file(&certs.ca),
    ))
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    crud_cache_outbox(&keel).await;
    assert_eq!(
        stream_messages(&nats.url("tls", "localhost"), &certs.ca, "TLSNATS").await,
        3
    );

    let server = format!("NATS at localhost:{}", nats.port);
    let err = connect(sink(
        nats.url("tls", "localhost"),
        TlsConfig::default().ca_file(&certs.other_ca),
    ))
    .await
    .unwrap_err();
    assert_names(&err, &server, "TLS");
    let err = connect(sink(nats.url("nats", "localhost"), TlsConfig::default()))
        .await
        .unwrap_err();
    assert_names(&err, &server, "TLS");
}

/// Bad TLS settings are refused before anything connects, naming the
/// setting and the file.
#[tokio::test]
async fn bad_tls_files_are_refused_at_start_up() {
    let Some(certs) = Certs::generate() else {
        return;
    };
    let missing = connect(config(
        &sqlite_url(),
        TlsConfig::default().ca_file("/nonexistent/ca.pem"),
    ))
    .await
    .unwrap_err();
    assert_eq!(missing.code(), "INVALID_ARGUMENT");
    assert!(
        missing
            .to_string()
            .contains("KEEL_TLS_CA_FILE /nonexistent/ca.pem"),
        "{missing}"
    );
    let not_a_key = connect(config(
        &sqlite_url(),
        TlsConfig::default().client_cert(&certs.client_cert, &certs.client_cert),
    ))
    .await
    .unwrap_err();
    assert!(
        not_a_key.to_string().contains("KEEL_TLS_CLIENT_KEY_FILE"),
        "{not_a_key}"
    );
}

/// Transactions dropped at every point of their life (while `BEGIN`, the
/// savepoint or the `INSERT` is in flight) on a pool of one TLS
/// connection: each later write is acknowledged at once. (sqlx 0.9.0 could
/// hang closing such a connection: its TLS flush waited for the server,
/// which had nothing more to say, and the pool's one place never freed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transaction_never_holds_a_tls_connection() {
    use keel::tx::TxOptions;
    let Some(certs) = Certs::generate() else {
        return;
    };
    let Some(pg) = TlsPostgres::start(&certs) else {
        return;
    };
    let mut one = config(
        &pg.url("localhost", "sslmode=verify-full"),
        TlsConfig::default().ca_file(&certs.ca),
    );
    one.pool.max_connections = 1;
    one.pool.acquire_timeout = Duration::from_secs(3);
    let keel = connect(one)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    keel_tests::create_tables(&keel).await;
    // On a task of its own, as a request handler runs (polled by a worker,
    // not by the test's own thread: the drops then land mid-statement).
    tokio::spawn(async move {
        let products = keel.service::<product::Entity>();
        let ctx = Context::actor("tls");
        for attempt in 0..240usize {
            let (keel, tx_ctx) = (keel.clone(), ctx.clone());
            keel_tests::drop_after(
                async move {
                    keel.transaction(&tx_ctx, TxOptions::new(), |tx| async move {
                        tx.service::<product::Entity>()
                            .create(tx.context(), NewProduct::new(format!("T-{attempt}"), 1))
                            .await
                    })
                    .await
                },
                attempt % 41,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            products
                .create(&ctx, NewProduct::new(format!("W-{attempt}"), 1))
                .await
                .unwrap_or_else(|e| panic!("attempt {attempt}: {}", chain(&e)));
        }
    })
    .await
    .unwrap();
}
