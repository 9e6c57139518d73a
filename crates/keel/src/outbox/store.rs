//! The `keel_outbox` and `keel_inbox` tables and the statements on them.
//!
//! A pending row (`state` 0) is due from `due_ms` on: 0 when written, the
//! time of its next attempt after a failure (only such rows have
//! `due_ms > 0`, so the partial index of them costs a write nothing). A
//! relay's lease is not written on the rows but once per subject, in
//! `keel_outbox_claims` (subject, owner, until): a claimed row is written
//! twice in all (inserted, marked done), not three times.
//!
//! Both tables are Keel's own and their statements are plain SQL, one text
//! per backend: the relay's claim needs `FOR UPDATE SKIP LOCKED` and a
//! correlated `NOT EXISTS`, which read more clearly as SQL than as a
//! builder chain. Times are milliseconds since the epoch (`BIGINT`), one
//! representation on all three databases.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::now_ms;
use crate::event::Event;
use crate::{Error, Keel, Result};

/// A row's state.
pub(crate) const PENDING: i16 = 0;
pub(crate) const PUBLISHED: i16 = 1;
pub(crate) const DEAD: i16 = 2;

/// Rewrites `?` placeholders as `$1, $2, …` for PostgreSQL. The texts here
/// hold no `?` other than placeholders.
pub(crate) fn sql(backend: DbBackend, text: &str) -> String {
    if backend != DbBackend::Postgres {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn statement(backend: DbBackend, text: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql(backend, text), values)
}

/// `?, ?, …` for `n` values.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Creates `keel_outbox`, `keel_outbox_lock` and `keel_outbox_claims`
/// when they do not exist.
pub(crate) async fn create_outbox_tables<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let statements: &[&str] = match db.get_database_backend() {
        DbBackend::Postgres => &[
            "CREATE TABLE IF NOT EXISTS keel_outbox (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id VARCHAR(36) NOT NULL,
                topic VARCHAR(255) NOT NULL,
                payload TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                state SMALLINT NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0,
                due_ms BIGINT NOT NULL DEFAULT 0,
                done_ms BIGINT,
                last_error TEXT)",
            "CREATE INDEX IF NOT EXISTS keel_outbox_pending ON keel_outbox (seq) WHERE state = 0",
            "CREATE INDEX IF NOT EXISTS keel_outbox_held ON keel_outbox (due_ms) WHERE state = 0 AND due_ms > 0",
            "CREATE INDEX IF NOT EXISTS keel_outbox_done ON keel_outbox (done_ms) WHERE state <> 0",
            "CREATE TABLE IF NOT EXISTS keel_outbox_lock (id INTEGER PRIMARY KEY)",
            "INSERT INTO keel_outbox_lock (id) VALUES (1) ON CONFLICT DO NOTHING",
            "CREATE TABLE IF NOT EXISTS keel_outbox_claims (
                topic VARCHAR(255) PRIMARY KEY,
                owner VARCHAR(64) NOT NULL,
                until_ms BIGINT NOT NULL)",
            // No trigger: a NOTIFY in the writes would serialise their
            // commits (see `Keel::outbox_committed`); one made by an early
            // build of the outbox goes.
            "DROP TRIGGER IF EXISTS keel_outbox_notify ON keel_outbox",
            "DROP FUNCTION IF EXISTS keel_outbox_notify()",
        ],
        DbBackend::MySql => &[
            "CREATE TABLE IF NOT EXISTS keel_outbox (
                seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                event_id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                topic VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                payload LONGTEXT CHARACTER SET utf8mb4 NOT NULL,
                created_ms BIGINT NOT NULL,
                state SMALLINT NOT NULL DEFAULT 0,
                attempts INT NOT NULL DEFAULT 0,
                due_ms BIGINT NOT NULL DEFAULT 0,
                done_ms BIGINT NULL,
                last_error TEXT CHARACTER SET utf8mb4 NULL,
                KEY keel_outbox_pending (state, seq),
                KEY keel_outbox_held (state, due_ms),
                KEY keel_outbox_done (state, done_ms))",
            "CREATE TABLE IF NOT EXISTS keel_outbox_lock (id INT NOT NULL PRIMARY KEY)",
            "INSERT IGNORE INTO keel_outbox_lock (id) VALUES (1)",
            "CREATE TABLE IF NOT EXISTS keel_outbox_claims (
                topic VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
                owner VARCHAR(64) NOT NULL,
                until_ms BIGINT NOT NULL)",
        ],
        _ => &[
            "CREATE TABLE IF NOT EXISTS keel_outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL,
                topic TEXT NOT NULL,
                payload TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                state SMALLINT NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0,
                due_ms BIGINT NOT NULL DEFAULT 0,
                done_ms BIGINT,
                last_error TEXT)",
            "CREATE INDEX IF NOT EXISTS keel_outbox_pending ON keel_outbox (seq) WHERE state = 0",
            "CREATE INDEX IF NOT EXISTS keel_outbox_held ON keel_outbox (due_ms) WHERE state = 0 AND due_ms > 0",
            "CREATE TABLE IF NOT EXISTS keel_outbox_claims (
                topic TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                until_ms BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS keel_outbox_done ON keel_outbox (done_ms) WHERE state <> 0",
        ],
    };
    execute_all(db, statements).await
}

/// Creates `keel_inbox` when it does not exist.
pub(crate) async fn create_inbox_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let statement = match db.get_database_backend() {
        DbBackend::Postgres => PG_INBOX,
        DbBackend::MySql => MYSQL_INBOX,
        _ => SQLITE_INBOX,
    };
    execute_all(db, &[statement]).await
}

/// Creates every table of the outbox and the inbox.
pub(crate) async fn create_tables(keel: &Keel) -> Result<()> {
    create_outbox_tables(keel.db()).await?;
    create_inbox_table(keel.db()).await.map_err(Error::from)
}

#[cfg(feature = "migration")]
/// Drops `keel_outbox`, `keel_outbox_lock` and `keel_outbox_claims` (with
/// the events not yet sent).
pub(crate) async fn drop_outbox_tables<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    execute_all(
        db,
        &[
            "DROP TABLE IF EXISTS keel_outbox_claims",
            "DROP TABLE IF EXISTS keel_outbox_lock",
            "DROP TABLE IF EXISTS keel_outbox",
        ],
    )
    .await
}

#[cfg(feature = "migration")]
/// Drops `keel_inbox`.
pub(crate) async fn drop_inbox_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    execute_all(db, &["DROP TABLE IF EXISTS keel_inbox"]).await
}

async fn execute_all<C: ConnectionTrait>(db: &C, statements: &[&str]) -> Result<(), DbErr> {
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    for text in statements {
        match db.execute_unprepared(text).await {
            Ok(_) => {}
            // Two instances migrating at once on PostgreSQL: `CREATE … IF
            // NOT EXISTS` can still collide on the catalog; the other won.
            Err(err) if postgres && is_duplicate(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

const PG_INBOX: &str = "CREATE TABLE IF NOT EXISTS keel_inbox (
                consumer VARCHAR(128) NOT NULL,
                event_id VARCHAR(36) NOT NULL,
                done_ms BIGINT NOT NULL,
                outcome VARCHAR(8) NOT NULL,
                error TEXT,
                PRIMARY KEY (consumer, event_id))";

const MYSQL_INBOX: &str = "CREATE TABLE IF NOT EXISTS keel_inbox (
                consumer VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                event_id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                done_ms BIGINT NOT NULL,
                outcome VARCHAR(8) NOT NULL,
                error TEXT CHARACTER SET utf8mb4 NULL,
                PRIMARY KEY (consumer, event_id))";

const SQLITE_INBOX: &str = "CREATE TABLE IF NOT EXISTS keel_inbox (
                consumer TEXT NOT NULL,
                event_id TEXT NOT NULL,
                done_ms BIGINT NOT NULL,
                outcome TEXT NOT NULL,
                error TEXT,
                PRIMARY KEY (consumer, event_id))";

fn is_duplicate(err: &DbErr) -> bool {
    let text = err.to_string();
    text.contains("duplicate key") || text.contains("already exists")
}

/// Writes `events` to the outbox, in one statement, inside the caller's
/// transaction.
pub(crate) async fn insert<C: ConnectionTrait>(conn: &C, events: &[Event]) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let span = crate::trace::outbox_write(events.len());
    tracing::Instrument::instrument(insert_rows(conn, events), span).await
}

async fn insert_rows<C: ConnectionTrait>(conn: &C, events: &[Event]) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let created = now_ms();
    // Many rows: stay below every backend's limit on bound values.
    for chunk in events.chunks(1000) {
        let mut text =
            String::from("INSERT INTO keel_outbox (event_id, topic, payload, created_ms) VALUES ");
        let mut values = Vec::with_capacity(chunk.len() * 4);
        for (i, event) in chunk.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str("(?, ?, ?, ?)");
            let payload = serde_json::to_string(event)
                .map_err(|e| DbErr::Custom(format!("an event does not serialise: {e}")))?;
            values.push(event.id.to_string().into());
            values.push(event.event_type.clone().into());
            values.push(payload.into());
            values.push(created.into());
        }
        conn.execute_raw(statement(backend, &text, values)).await?;
    }
    Ok(())
}
