//! The shop's schema under sea-orm-migration, through the `shop migrate`
//! commands a user runs, on each database: up, status, down to nothing, up
//! again; a database of the shop's old numbering (`shop_migrations`) is
//! adopted without losing a row, and one left at an older step is brought
//! forward; on MySQL / MariaDB, Keel's audit migration brings an older
//! `keel_audit` up to date.

use std::process::Command;

use keel::Keel;
use keel_tests::{Backend, TestDb, probe_backends};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use shop::entities::{customer, order, order_line, product, shipment};

const KEEL_MIGRATIONS: [&str; 3] = [
    "m20261206_000001_keel_audit",
    "m20261206_000002_keel_outbox",
    "m20261206_000003_keel_inbox",
];
const SHOP_MIGRATIONS: [&str; 5] = [
    "m20261206_000101_products",
    "m20261206_000102_customers",
    "m20261206_000103_orders",
    "m20261206_000104_query_indexes",
    "m20261206_000105_shipments",
];
const TABLES: [&str; 10] = [
    "customers",
    "keel_audit",
    "keel_inbox",
    "keel_outbox",
    "keel_outbox_claims",
    "keel_outbox_lock",
    "order_lines",
    "orders",
    "products",
    "shipments",
];

/// Whether `backend` answers. The probe also drops the databases an
/// earlier run left, so it runs once, before any test makes one.
fn available(backend: Backend) -> bool {
    static PROBES: std::sync::OnceLock<Vec<keel_tests::Probe>> = std::sync::OnceLock::new();
    // The probe runs a runtime of its own.
    tokio::task::block_in_place(|| PROBES.get_or_init(probe_backends))
        .iter()
        .any(|p| p.backend == backend && p.status.is_ok())
}

/// `shop migrate <args>` against `url`: its standard output, or a panic
/// naming what it printed when it failed.
fn shop_migrate(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shop"))
        .arg("migrate")
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("REDIS_URL")
        .env_remove("NATS_URL")
        .env("RUST_LOG", "error")
        .env(
            "KEEL_PAGE_TOKEN_SECRET",
            "migrations-test-secret-0123456789abcdef",
        )
        .output()
        .expect("run shop migrate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "shop migrate {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The status lines `shop migrate status` prints, as (name, applied).
fn status(url: &str) -> Vec<(String, bool)> {
    shop_migrate(url, &["status"])
        .lines()
        .filter_map(|line| {
            let (state, name) = line.split_once("  ")?;
            Some((name.trim().to_owned(), state == "applied"))
        })
        .collect()
}

fn all_names() -> Vec<&'static str> {
    KEEL_MIGRATIONS
        .iter()
        .chain(&SHOP_MIGRATIONS)
        .copied()
        .collect()
}

async fn tables(keel: &Keel) -> Vec<String> {
    let db = keel.db();
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
        }
        DbBackend::MySql => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        }
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .filter(|name| name != "seaql_migrations")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

async fn count(keel: &Keel, table: &str) -> i64 {
    let db = keel.db();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// A Keel on `db` that creates no table; with `outbox`, its writes put
/// their events in the outbox (no relay runs: they stay there).
async fn keel_on(db: &TestDb, outbox: bool) -> Keel {
    let mut events = keel::outbox::EventsConfig::default();
    if outbox {
        events.sink = keel::outbox::SinkKind::Bus;
    }
    db.builder()
        .max_connections(4)
        .auto_migrate(false)
        .events(events)
        .connect()
        .await
        .unwrap()
}

/// `n` products created through the service: rows, audit rows and events.
async fn create_products(keel: &Keel, n: usize) {
    let products = keel.service::<product::Entity>();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..n {
        let input: <product::Entity as keel::Resource>::Create = serde_json::from_value(
            serde_json::json!({"sku": format!("M-{}-{i}", &tag[..8]), "name": "Kept", "price_cents": 100, "stock": 1}),
        )
        .unwrap();
        products
            .create(&keel::Context::actor("alice"), input)
            .await
            .unwrap();
    }
}

/// The tables a migrated database has (SQLite needs no outbox lock row).
fn tables_of(backend: Backend) -> Vec<String> {
    TABLES
        .iter()
        .filter(|t| backend != Backend::Sqlite || **t != "keel_outbox_lock")
        .map(|t| (*t).to_owned())
        .collect()
}

/// Up, status, down one step, down to nothing, up again.
async fn up_down_up(backend: Backend) {
    let db = TestDb::create(backend).await;
    let keel = keel_on(&db, true).await;

    assert!(
        status(&db.url).iter().all(|(_, applied)| !applied),
        "a fresh database has every migration pending"
    );
    let out = shop_migrate(&db.url, &[]);
    assert!(out.starts_with("8 migration(s) applied"), "{out}");
    let all = status(&db.url);
    assert_eq!(
        all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        all_names()
    );
    assert!(all.iter().all(|(_, applied)| *applied), "{all:?}");
    assert_eq!(tables(&keel).await, tables_of(backend));
    assert!(shop_migrate(&db.url, &[]).starts_with("0 migration(s) applied"));

    // Data written through Keel now: products (with their audit rows).
    create_products(&keel, 5).await;
    assert_eq!(count(&keel, "products").await, 5);

    // One step down: the shipments table goes, the rest stays.
    let out = shop_migrate(&db.url, &["down"]);
    assert_eq!(out.trim(), "rolled back  m20261206_000105_shipments");
    assert!(!tables(&keel).await.contains(&"shipments".to_owned()));
    assert_eq!(count(&keel, "products").await, 5);

    // All the way down: no table of Keel's or the shop's is left.
    let out = shop_migrate(&db.url, &["down", "20"]);
    assert_eq!(out.lines().count(), 7, "{out}");
    assert_eq!(tables(&keel).await, Vec::<String>::new());
    assert!(status(&db.url).iter().all(|(_, applied)| !applied));
    assert_eq!(
        shop_migrate(&db.url, &["down"]).trim(),
        "no migration is applied"
    );

    // And up again, to a schema Keel works on.
    assert!(shop_migrate(&db.url, &[]).starts_with("8 migration(s) applied"));
    assert_eq!(tables(&keel).await, tables_of(backend));
    create_products(&keel, 3).await;
    assert_eq!(count(&keel, "products").await, 3);
    assert_eq!(count(&keel, "keel_audit").await, 3);
    assert_eq!(count(&keel, "keel_outbox").await, 3);

    let _ = keel.close().await;
    db.destroy().await;
}

/// The schema as the shop made it before sea-orm-migration: the same
/// tables, with the steps `done` recorded in `shop_migrations`.
async fn old_numbering(keel: &Keel, done: &[i64]) {
    let has = |v: i64| done.contains(&v);
    if has(1) || has(6) {
        keel.migrate().await.unwrap();
    }
    if has(2) {
        keel.create_table(product::Entity).await.unwrap();
    }
    if has(3) {
        keel.create_table(customer::Entity).await.unwrap();
    }
    if has(4) {
        keel.create_table(order::Entity).await.unwrap();
        keel.create_table(order_line::Entity).await.unwrap();
    }
    if has(5) {
        keel.create_indexes::<product::Entity>().await.unwrap();
        keel.create_indexes::<customer::Entity>().await.unwrap();
        keel.create_indexes::<order::Entity>().await.unwrap();
        keel.create_indexes::<order_line::Entity>().await.unwrap();
    }
    if has(7) {
        keel.create_table(shipment::Entity).await.unwrap();
        keel.create_indexes::<shipment::Entity>().await.unwrap();
    }
    let db = keel.db();
    db.execute_unprepared(
        "CREATE TABLE shop_migrations (version BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL)",
    )
    .await
    .unwrap();
    for v in done {
        db.execute_unprepared(&format!(
            "INSERT INTO shop_migrations (version, name) VALUES ({v}, 'step {v}')"
        ))
        .await
        .unwrap();
    }
}

/// A database of the old numbering, every step done and data in it, is
/// adopted: nothing runs, no row is lost, `shop_migrations` goes.
async fn old_numbering_is_adopted(backend: Backend) {
    let db = TestDb::create(backend).await;
    let keel = keel_on(&db, true).await;
    old_numbering(&keel, &[1, 2, 3, 4, 5, 6, 7]).await;
    create_products(&keel, 12).await;
    let (products, audit) = (
        count(&keel, "products").await,
        count(&keel, "keel_audit").await,
    );
    assert_eq!(products, 12);
    assert_eq!(audit, 12);
    let outbox = count(&keel, "keel_outbox").await;

    let out = shop_migrate(&db.url, &[]);
    assert!(out.starts_with("0 migration(s) applied"), "{out}");
    assert!(status(&db.url).iter().all(|(_, applied)| *applied));
    assert_eq!(
        tables(&keel).await,
        tables_of(backend),
        "shop_migrations is gone"
    );
    assert_eq!(count(&keel, "products").await, products);
    assert_eq!(count(&keel, "keel_audit").await, audit);
    assert_eq!(count(&keel, "keel_outbox").await, outbox);

    // The adopted database rolls back and forward like any other.
    shop_migrate(&db.url, &["down", "2"]);
    assert!(!tables(&keel).await.contains(&"shipments".to_owned()));
    assert!(shop_migrate(&db.url, &[]).starts_with("2 migration(s) applied"));
    assert_eq!(count(&keel, "products").await, products);

    let _ = keel.close().await;
    db.destroy().await;
}

/// A database left at the old step 5 (before the outbox and shipments):
/// its steps are adopted and the three that follow run.
async fn an_older_step_is_brought_forward(backend: Backend) {
    let db = TestDb::create(backend).await;
    let keel = keel_on(&db, false).await;
    old_numbering(&keel, &[1, 2, 3, 4, 5]).await;
    // Step 1 of that time made only the audit log.
    keel.db()
        .execute_unprepared("DROP TABLE keel_inbox")
        .await
        .unwrap();
    for t in ["keel_outbox_claims", "keel_outbox_lock", "keel_outbox"] {
        keel.db()
            .execute_unprepared(&format!("DROP TABLE IF EXISTS {t}"))
            .await
            .unwrap();
    }
    create_products(&keel, 4).await;

    let out = shop_migrate(&db.url, &[]);
    assert!(out.starts_with("3 migration(s) applied"), "{out}");
    assert_eq!(tables(&keel).await, tables_of(backend));
    assert_eq!(count(&keel, "products").await, 4);

    let _ = keel.close().await;
    db.destroy().await;
}

/// MySQL / MariaDB: a `keel_audit` an older Keel made (the server's
/// collation, whole-second times) is brought up to date by Keel's audit
/// migration, its rows kept.
async fn mysql_audit_upgrade() {
    let db = TestDb::create(Backend::MySql).await;
    let keel = keel_on(&db, true).await;
    keel.db()
        .execute_unprepared(keel_tests::OLDER_MYSQL_AUDIT_TABLE)
        .await
        .unwrap();
    keel.db()
        .execute_unprepared(
            "INSERT INTO keel_audit (entity, entity_id, action, actor, request_id, at, changes) \
             VALUES ('products', '1', 'create', 'alice', 'r1', NOW(), '[]')",
        )
        .await
        .unwrap();
    shop_migrate(&db.url, &[]);
    let row = keel
        .db()
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLLATION_NAME AS c, (SELECT DATETIME_PRECISION FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'keel_audit' AND COLUMN_NAME = 'at') AS p \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'keel_audit' AND COLUMN_NAME = 'entity_id'",
        ))
        .await
        .unwrap()
        .unwrap();
    let collation: String = row.try_get("", "c").unwrap();
    let precision: u64 = row.try_get::<Option<u64>>("", "p").unwrap().unwrap_or(0);
    assert!(collation.ends_with("_bin"), "{collation}");
    assert_eq!(precision, 6);
    assert_eq!(count(&keel, "keel_audit").await, 1);
    let _ = keel.close().await;
    db.destroy().await;
}

async fn on(backend: Backend) {
    if !available(backend) {
        return;
    }
    up_down_up(backend).await;
    old_numbering_is_adopted(backend).await;
    an_older_step_is_brought_forward(backend).await;
    if backend == Backend::MySql {
        mysql_audit_upgrade().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_on_sqlite() {
    on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_on_postgres() {
    on(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_on_mysql() {
    on(Backend::MySql).await;
}

/// Instances started together on one database migrate one after the
/// other: every `shop migrate` succeeds and each migration runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_at_once_take_turns() {
    for backend in [Backend::Postgres, Backend::MySql] {
        if !available(backend) {
            continue;
        }
        let db = TestDb::create(backend).await;
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                std::thread::spawn(move || shop_migrate(&url, &[]))
            })
            .collect();
        let applied: usize = runs
            .into_iter()
            .map(|r| r.join().expect("shop migrate"))
            .map(|out| {
                out.split(' ')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap()
            })
            .sum();
        assert_eq!(applied, 8, "{}: each migration ran once", backend.name());
        db.destroy().await;
    }
}
