//! Explicit transactions: retried when they lose a race, nested as
//! savepoints, with work queued to run after the outermost commit.
//!
//! ```no_run
//! # async fn demo(keel: keel::Keel) -> keel::Result<()> {
//! use keel::tx::{Isolation, TxOptions};
//!
//! let ctx = keel::Context::actor("alice");
//! let total = keel
//!     .transaction(&ctx, TxOptions::new().isolation(Isolation::Serializable), |tx| async move {
//!         // Services bound to `tx` run in it: `tx.service::<E>()` or `service.with(&tx)`.
//!         // Reads, writes, `tx.emit(event)`, `tx.after_commit(...)`, nested
//!         // `tx.transaction(...)` (a savepoint) ...
//!         Ok(42)
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # What is retried
//!
//! The closure is run again, in a new transaction, when it fails with
//! `ABORTED`: a PostgreSQL serialization failure or deadlock (SQLSTATE
//! `40001`, `40P01`; `55P03` for a `NOWAIT` lock), a MySQL/MariaDB deadlock or
//! lock-wait timeout (1213, 1205), a busy SQLite database, or
//! [`Error::aborted`] from the closure. Every other error rolls the
//! transaction back and is returned unchanged. The retry policy bounds the
//! attempts; the context's deadline bounds the whole.
//!
//! A failure of the `COMMIT` itself is never retried blindly: when the
//! database answered (a serialization failure found at commit, a deferred
//! constraint), the transaction is known to be rolled back and the error is
//! classified as any other; when the connection failed before an answer
//! came, nobody knows whether the commit happened, and the error is
//! `COMMIT_OUTCOME_UNKNOWN`. The deadline never interrupts a `COMMIT`.

mod conn;
mod options;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

pub use crate::resilience::RetryPolicy;
pub(crate) use conn::Conn;
pub use options::{Isolation, TxOptions};

use crate::error::{DbFailure, classify};
use crate::event::{DomainEvent, Event};
use crate::sync::Unpoison as _;
use crate::{BaseService, Context, Error, Keel, Resource, Result};

type AfterCommit =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static>;

/// What runs after the outermost commit, in the order it was queued.
enum Effect {
    /// Written to the outbox before the commit when it is on; handed to
    /// the in-process bus after the commit when it is off.
    Event(Box<Event>),
    /// Handed to the in-process bus after the commit, never written.
    Transient(Box<Event>),
    Run(AfterCommit),
}

/// An open transaction (or savepoint), handed to the closure of
/// [`Keel::transaction`] and [`Tx::transaction`].
///
/// Cloning is cheap; the clones are the same transaction. Do not keep a
/// clone after the closure returns: the transaction cannot be committed
/// while one exists, and the closure then fails with `INTERNAL`.
#[derive(Clone)]
pub struct Tx {
    node: Arc<Node>,
}

struct Node {
    conn: DatabaseTransaction,
    keel: Keel,
    ctx: Context,
    root: Arc<Root>,
    depth: u32,
    effects: Mutex<Vec<Effect>>,
}

/// What the outermost transaction and all its savepoints share.
struct Root {
    read_only: bool,
    /// Set when a savepoint inside lost a race: the database may have rolled
    /// the whole transaction back (MySQL does on a deadlock), so it must not
    /// commit, and is retried instead.
    doomed: Mutex<Option<String>>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("depth", &self.node.depth)
            .field("read_only", &self.node.root.read_only)
            .finish_non_exhaustive()
    }
}

/// An error type a transaction body may fail with: Keel's own, or one that
/// carries it.
pub(crate) trait TxFailure: From<Error> {
    /// The Keel error inside, if there is one to look at.
    fn error(&self) -> Option<&Error>;

    fn is_aborted(&self) -> bool {
        matches!(self.error(), Some(Error::Aborted { .. }))
    }
}

impl TxFailure for Error {
    fn error(&self) -> Option<&Error> {
        Some(self)
    }
}

impl Tx {
    /// The context the transaction was opened with.
    pub fn context(&self) -> &Context {
        &self.node.ctx
    }

    /// The [`Keel`] it belongs to.
    pub fn keel(&self) -> &Keel {
        &self.node.keel
    }

    /// The sea-orm transaction, for statements of your own. They join the
    /// transaction; they write no audit row and emit no event.
    pub fn db(&self) -> &DatabaseTransaction {
        &self.node.conn
    }

    /// 0 for the outermost transaction, 1 for a savepoint in it, and so on.
    pub fn depth(&self) -> u32 {
        self.node.depth
    }

    /// Whether the transaction is read-only.
    pub fn is_read_only(&self) -> bool {
        self.node.root.read_only
    }

    /// The service of `E` bound to this transaction.
    pub fn service<E: Resource>(&self) -> BaseService<E> {
        BaseService::bound(self.clone())
    }

    /// Emits `event` with the transaction: never if the transaction (or the
    /// savepoint it was emitted in) rolls back. With the outbox on (a sink
    /// configured) it is written to `keel_outbox` just before the outermost
    /// commit, as part of the transaction, and the relay publishes it; with
    /// the outbox off it is handed to the in-process subscribers after the
    /// commit.
    pub fn emit(&self, event: Event) {
        self.push(Effect::Event(Box::new(event)));
    }

    /// Emits `event` for the in-process subscribers only, after the
    /// outermost commit, and never to the outbox: delivery at most once,
    /// lost if the process dies before it. For notifications nobody must
    /// rely on (a cache warm-up, a progress signal).
    pub fn emit_transient(&self, event: Event) {
        self.push(Effect::Transient(Box::new(event)));
    }

    /// Emits a typed domain event: type `{service}.{D::TYPE}`, data the
    /// value as JSON, subject [`DomainEvent::subject`].
    pub fn emit_domain<D: DomainEvent>(&self, event: &D) -> Result<()> {
        let event = Event::domain(&self.node.ctx, &self.node.keel.config().service_name, event)?;
        self.emit(event);
        Ok(())
    }

    /// Queues `work` to run after the outermost commit (and never after a
    /// rollback), before the events are dispatched. The transaction's caller
    /// waits for it, so it should be short; it must not panic.
    pub fn after_commit<F, Fut>(&self, work: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.push(Effect::Run(Box::new(move || Box::pin(work()))));
    }

    /// Runs `f` in a savepoint of this transaction: if it fails, its
    /// statements, events and after-commit work are undone and the outer
    /// transaction goes on; if it succeeds, they join the outer transaction.
    /// A savepoint is not retried on its own: a lost race fails the whole
    /// transaction, which its policy then retries.
    pub async fn transaction<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.savepoint(f).await
    }

    /// The connection the services use.
    pub(crate) fn conn(&self) -> Conn<'_> {
        Conn::Tx(&self.node.conn)
    }

    fn push(&self, effect: Effect) {
        lock(&self.node.effects).push(effect);
    }

    fn doom(&self, why: &Error) {
        let mut doomed = lock(&self.node.root.doomed);
        if doomed.is_none() {
            *doomed = Some(why.to_string());
        }
    }

    /// A savepoint, generic over the body's error type.
    pub(crate) async fn savepoint<T, X, F, Fut>(&self, f: F) -> Result<T, X>
    where
        X: TxFailure,
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T, X>>,
    {
        let conn = self
            .node
            .conn
            .begin()
            .await
            .map_err(|e| X::from(Error::from(e)))?;
        let child = Tx {
            node: Arc::new(Node {
                conn,
                keel: self.node.keel.clone(),
                ctx: self.node.ctx.clone(),
                root: self.node.root.clone(),
                depth: self.node.depth + 1,
                effects: Mutex::new(Vec::new()),
            }),
        };
        let result = f(child.clone()).await;
        let node = child.into_node()?;
        match result {
            Ok(value) => match node.conn.commit().await {
                Ok(()) => {
                    let effects = node.effects.into_inner().unpoisoned();
                    lock(&self.node.effects).extend(effects);
                    Ok(value)
                }
                Err(err) => {
                    let err = Error::from(err);
                    if matches!(err, Error::Aborted { .. }) {
                        self.doom(&err);
                    }
                    Err(X::from(err))
                }
            },
            Err(failure) => {
                if let Some(err) = failure.error().filter(|_| failure.is_aborted()) {
                    self.doom(err);
                }
                if let Err(err) = node.conn.rollback().await {
                    tracing::debug!(error = %err, "rollback to savepoint failed");
                }
                Err(failure)
            }
        }
    }

    fn into_node(self) -> Result<Node> {
        Arc::try_unwrap(self.node).map_err(|_| {
            Error::internal(
                "a clone of the transaction handle was kept after its closure returned, \
                 so the transaction cannot end; it is rolled back",
            )
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unpoisoned()
}

/// Runs `f` in a transaction of its own, again while it fails with
/// `ABORTED` and the policy and deadline allow, and runs the queued effects
/// after the commit.
pub(crate) async fn run<T, X, F, Fut>(
    keel: &Keel,
    ctx: &Context,
    options: &TxOptions,
    mut f: F,
) -> Result<T, X>
where
    X: TxFailure,
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = Result<T, X>>,
{
    let mut delays = options.retry_policy().delays();
    let mut attempt = 1;
    loop {
        let span = crate::trace::transaction_attempt(attempt);
        let outcome =
            tracing::Instrument::instrument(attempt_once(keel, ctx, options, &mut f), span.clone())
                .await;
        let failure = match outcome {
            Ok(value) => {
                span.record("keel.outcome", "committed");
                return Ok(value);
            }
            Err(failure) if failure.is_aborted() => {
                span.record("keel.outcome", "lost a race");
                failure
            }
            Err(failure) => {
                span.record("keel.outcome", "failed");
                return Err(failure);
            }
        };
        let Some(delay) = delays.next() else {
            tracing::warn!(
                attempts = attempt,
                "transaction gave up after losing every race"
            );
            return Err(failure);
        };
        if ctx
            .deadline()
            .is_some_and(|d| tokio::time::Instant::now() + delay >= d)
        {
            return Err(failure);
        }
        tracing::debug!(attempt, ?delay, "transaction lost a race; running it again");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

async fn attempt_once<T, X, F, Fut>(
    keel: &Keel,
    ctx: &Context,
    options: &TxOptions,
    f: &mut F,
) -> Result<T, X>
where
    X: TxFailure,
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = Result<T, X>>,
{
    if ctx
        .deadline()
        .is_some_and(|d| tokio::time::Instant::now() >= d)
    {
        return Err(X::from(Error::DeadlineExceeded));
    }
    // The deadline bounds the work, never the commit: a commit cut off half
    // way would leave its outcome unknown.
    let deadline = ctx.deadline();
    let pool_timeout = keel.config().pool.statement_timeout;
    let opened = async {
        let conn = begin(keel, options).await?;
        let session = Session::setup(&conn, options).await?;
        Ok::<_, Error>((conn, session))
    };
    let (conn, session) = match deadline {
        None => opened.await,
        Some(deadline) => tokio::time::timeout_at(deadline, opened)
            .await
            .unwrap_or(Err(Error::DeadlineExceeded)),
    }
    .map_err(X::from)?;
    let tx = Tx {
        node: Arc::new(Node {
            conn,
            keel: keel.clone(),
            ctx: ctx.clone(),
            root: Arc::new(Root {
                read_only: options.is_read_only(),
                doomed: Mutex::new(None),
            }),
            depth: 0,
            effects: Mutex::new(Vec::new()),
        }),
    };
    let result = match deadline {
        None => Some(f(tx.clone()).await),
        Some(deadline) => tokio::time::timeout_at(deadline, f(tx.clone())).await.ok(),
    };
    let Some(result) = result else {
        // Out of time, perhaps in the middle of a statement the database is
        // still running: give up now, and roll back (and put the session
        // back) in the background, once the connection answers again.
        if let Ok(node) = tx.into_node() {
            let conn = node.conn;
            tokio::spawn(async move {
                session.reset(&conn, pool_timeout).await;
                if let Err(err) = conn.rollback().await {
                    tracing::debug!(error = %err, "rollback after a deadline failed");
                }
            });
        }
        return Err(X::from(Error::DeadlineExceeded));
    };
    let node = tx.into_node()?;
    let doomed = node.root.doomed.lock().unpoisoned().take();
    let result = match (result, doomed) {
        (Ok(_), Some(why)) => Err(X::from(Error::aborted(why))),
        (result, _) => result,
    };
    let effects = std::mem::take(&mut *lock(&node.effects));
    // The outbox rows are the transaction's last statement: they commit
    // with everything else, or not at all.
    let result = match result {
        Ok(value) if keel.outbox_enabled() => {
            let durable: Vec<Event> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Event(event) => Some((**event).clone()),
                    _ => None,
                })
                .collect();
            match crate::outbox::insert(&node.conn, &durable).await {
                Ok(()) => Ok(value),
                Err(err) => Err(X::from(Error::from(err))),
            }
        }
        other => other,
    };
    session.reset(&node.conn, pool_timeout).await;
    match result {
        Ok(value) => {
            node.conn
                .commit()
                .await
                .map_err(|e| X::from(commit_error(e)))?;
            run_effects(keel, effects).await;
            Ok(value)
        }
        Err(failure) => {
            if let Err(err) = node.conn.rollback().await {
                tracing::warn!(error = %err, "rollback failed; the connection is discarded");
            }
            Err(failure)
        }
    }
}

async fn begin(keel: &Keel, options: &TxOptions) -> Result<DatabaseTransaction> {
    let sqlite = keel.backend() == DbBackend::Sqlite;
    let config = if sqlite {
        // Always serializable; a transaction that may write takes the write
        // lock at once, so writers queue instead of failing on upgrade.
        TransactionOptions {
            sqlite_transaction_mode: Some(if options.is_read_only() {
                SqliteTransactionMode::Deferred
            } else {
                SqliteTransactionMode::Immediate
            }),
            ..TransactionOptions::default()
        }
    } else {
        TransactionOptions {
            isolation_level: options.isolation_level().map(Isolation::sea_orm),
            access_mode: options
                .is_read_only()
                .then_some(sea_orm::AccessMode::ReadOnly),
            ..TransactionOptions::default()
        }
    };
    // sqlx counts a `BEGIN` only once it has read the answer: a caller
    // that goes away while the `BEGIN` is in flight (a closed connection, a
    // request timeout) leaves the server inside a transaction the driver
    // does not know about, and the connection goes back to the pool so.
    // Every later statement on it, an autocommit write included, then runs
    // inside that transaction, uncommitted. On a task of its own the
    // `BEGIN` always finishes; if the caller is gone by then, the
    // transaction is dropped there, rolled back, before the connection is
    // used again.
    let db = keel.db().clone();
    tokio::spawn(async move { db.begin_with_options(config).await })
        .await
        .map_err(|e| Error::internal(format!("the task beginning a transaction failed: {e}")))?
        .map_err(Error::from)
}

/// Session settings a transaction changed and must put back before its
/// connection returns to the pool.
enum Session {
    Untouched,
    MariaDbTimeout,
    MySqlTimeout,
}

/// MariaDB's `SET SESSION max_statement_time` (seconds) and MySQL's
/// `SET SESSION max_execution_time` (milliseconds) for `ms`, or back to the
/// server's default for `None`. Numbers only: nothing here comes from
/// outside.
pub(crate) fn mysql_timeout_statements(ms: Option<u128>) -> [String; 2] {
    match ms {
        Some(ms) => [
            format!(
                "SET SESSION max_statement_time = {}.{:03}",
                ms / 1000,
                ms % 1000
            ),
            format!("SET SESSION max_execution_time = {ms}"),
        ],
        None => [
            "SET SESSION max_statement_time = DEFAULT".to_owned(),
            "SET SESSION max_execution_time = DEFAULT".to_owned(),
        ],
    }
}

impl Session {
    async fn setup(conn: &DatabaseTransaction, options: &TxOptions) -> Result<Session> {
        let Some(timeout) = options.statement_timeout_value() else {
            return Ok(Session::Untouched);
        };
        let ms = timeout.as_millis().max(1);
        match conn.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_unprepared(&format!("SET LOCAL statement_timeout = {ms}"))
                    .await
                    .map_err(Error::from)?;
                Ok(Session::Untouched)
            }
            DbBackend::MySql => {
                let [mariadb, mysql] = mysql_timeout_statements(Some(ms));
                if conn.execute_unprepared(&mariadb).await.is_ok() {
                    return Ok(Session::MariaDbTimeout);
                }
                conn.execute_unprepared(&mysql).await.map_err(Error::from)?;
                Ok(Session::MySqlTimeout)
            }
            _ => Ok(Session::Untouched),
        }
    }

    /// Puts the session's statement timeout back to the pool's own
    /// (`PoolConfig::statement_timeout`), or the server's default.
    async fn reset(self, conn: &DatabaseTransaction, pool_timeout: Option<Duration>) {
        let [mariadb, mysql] = mysql_timeout_statements(pool_timeout.map(|t| t.as_millis().max(1)));
        let sql = match self {
            Session::Untouched => return,
            Session::MariaDbTimeout => mariadb.as_str(),
            Session::MySqlTimeout => mysql.as_str(),
        };
        // After a statement cut off by a deadline, the first answer read
        // may still be that statement's (MySQL); try again before giving up.
        for attempt in 1..=3 {
            match conn.execute_unprepared(sql).await {
                Ok(_) => return,
                Err(err) if attempt == 3 => {
                    tracing::warn!(error = %err, "could not reset the statement timeout");
                }
                Err(_) => {}
            }
        }
    }
}

/// A failed `COMMIT`: rolled back for sure when the database answered with
/// an error, of unknown outcome when the connection failed first.
fn commit_error(err: DbErr) -> Error {
    match classify(err) {
        DbFailure::Unavailable(_, source) => Error::CommitOutcomeUnknown {
            source: Box::new(source),
        },
        DbFailure::Other(source) if !answered_by_database(&source) => Error::CommitOutcomeUnknown {
            source: Box::new(source),
        },
        failure => failure.into_error("transaction"),
    }
}

fn answered_by_database(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sea_orm::sqlx::Error::Database(_))
        }
        _ => false,
    }
}

async fn run_effects(keel: &Keel, effects: Vec<Effect>) {
    let durable = keel.outbox_enabled();
    let mut events = Vec::new();
    let mut written = false;
    for effect in effects {
        match effect {
            Effect::Run(work) => work().await,
            Effect::Event(_) if durable => written = true,
            Effect::Event(event) | Effect::Transient(event) => events.push(*event),
        }
    }
    if written {
        keel.outbox_committed();
    }
    for event in events {
        keel.events().publish(event);
    }
}
