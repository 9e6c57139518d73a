//! The runtime handle: the database pool, the configuration, the services.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::config::{KeelConfig, PoolConfig, Secret};
use crate::event::{EventBus, Subscription};
use crate::hooks::{HookList, HookRegistry, Hooks};
use crate::query::token::TokenSigner;
use crate::query::{PageConfig, QueryLimits};
use crate::tx::{Tx, TxOptions};
use crate::{BaseService, Context, Error, Resource, Result};

/// The entry point: owns the connection pool and hands out services.
///
/// Cloning is cheap (an `Arc`); every clone shares the pool.
///
/// ```no_run
/// # async fn demo() -> keel::Result<()> {
/// let keel = keel::Keel::from_env().await?; // DATABASE_URL, or a SQLite file
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Keel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    config: KeelConfig,
    signer: TokenSigner,
    events: EventBus,
    hooks: HookRegistry,
    cache: crate::cache::Cache,
    /// The resources whose table was checked (MySQL).
    schema_checked: std::sync::Mutex<std::collections::HashSet<std::any::TypeId>>,
    /// Turns for lists and counts on the pool (`PoolConfig::query_permits`).
    query_permits: Arc<tokio::sync::Semaphore>,
    /// The server's exact collation (MySQL), looked up once.
    exact_collation: tokio::sync::OnceCell<Option<&'static str>>,
    /// Per resource, its sortable text columns too long for the server to
    /// sort exactly (MySQL), looked up the first time one is sorted by.
    long_text: crate::schema::LongTextCells,
    /// Woken after each commit that wrote outbox rows: the relays of this
    /// process look at once.
    outbox_wake: Arc<tokio::sync::Notify>,
    /// Signalled after each such commit on PostgreSQL: a task of its own
    /// then tells the other instances' relays (`NOTIFY keel_outbox`), at
    /// most once per couple of milliseconds, outside the writes.
    outbox_notify: Arc<tokio::sync::Notify>,
    outbox_notifier: std::sync::OnceLock<()>,
}

impl Keel {
    /// Connects with [`KeelConfig::from_env`].
    pub async fn from_env() -> Result<Keel> {
        Keel::connect(KeelConfig::from_env()?).await
    }

    /// A builder, starting from the defaults (SQLite file `keel.db`).
    pub fn builder() -> KeelBuilder {
        KeelBuilder {
            config: KeelConfig::new(crate::config::DEFAULT_DATABASE_URL),
            subscribers: Vec::new(),
        }
    }

    /// Connects with `config`, and creates Keel's own tables when they are
    /// missing unless `config.auto_migrate` is off. An unreachable database
    /// is `UNAVAILABLE`.
    pub async fn connect(config: KeelConfig) -> Result<Keel> {
        config.check()?;
        #[cfg(feature = "tls")]
        crate::tls::install_crypto_provider();
        #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
        let mut db = Database::connect(connect_options(&config))
            .await
            .map_err(|e| crate::tls::connect_error(&config.database_url, e.into()))?;
        // A span of each statement, when traces are exported (nothing is
        // hooked in otherwise).
        #[cfg(feature = "otel")]
        if crate::telemetry::tracing_active() {
            let system = match db.get_database_backend() {
                DbBackend::Postgres => "postgresql",
                DbBackend::MySql => "mysql",
                _ => "sqlite",
            };
            db.set_metric_callback(move |info| {
                crate::trace::otel::statement(
                    system,
                    &info.statement.sql,
                    info.elapsed,
                    info.failed,
                );
            });
        }
        // A TLS server whose certificate does not verify stops start-up
        // here; one that is down does not (the cache and the outbox wait).
        crate::tls::check_servers(&config).await?;
        let migrate = config.auto_migrate;
        let keel = Keel::from_connection(db, config);
        // Redis down: the cache fails open, and start-up goes on.
        if !keel.cache().listening(Duration::from_secs(2)).await {
            tracing::warn!("not yet subscribed to Redis invalidations; starting anyway");
        }
        if migrate {
            keel.migrate().await?;
        }
        Ok(keel)
    }

    /// Wraps a connection the application already has. The pool settings of
    /// `config` are not applied to it, and nothing is migrated: call
    /// [`migrate`](Self::migrate) before the first write.
    pub fn from_connection(db: DatabaseConnection, config: KeelConfig) -> Keel {
        let signer = match &config.page_token_secret {
            Some(secret) => TokenSigner::new(secret.expose()),
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).expect("the operating system provides random bytes");
                tracing::warn!(
                    "KEEL_PAGE_TOKEN_SECRET is not set: page tokens are signed with a random key \
                     and work only on this instance until it restarts"
                );
                TokenSigner::new(&key)
            }
        };
        let events = EventBus::new(&config.service_name);
        let cache = crate::cache::Cache::with_tls(&config.cache, &config.tls).unwrap_or_else(|err| {
            tracing::error!(error = %err, "the Redis cache tier cannot be set up; caching in process only");
            let mut local = config.cache.clone();
            local.redis_url = None;
            crate::cache::Cache::new(&local).expect("an in-process cache needs nothing")
        });
        let query_permits = Arc::new(tokio::sync::Semaphore::new(
            config.pool.query_permits() as usize
        ));
        Keel {
            inner: Arc::new(Inner {
                db,
                config,
                signer,
                events,
                hooks: HookRegistry::default(),
                cache,
                schema_checked: std::sync::Mutex::default(),
                query_permits,
                exact_collation: tokio::sync::OnceCell::new(),
                long_text: crate::schema::LongTextCells::default(),
                outbox_wake: Arc::new(tokio::sync::Notify::new()),
                outbox_notify: Arc::new(tokio::sync::Notify::new()),
                outbox_notifier: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The service of resource `E`.
    pub fn service<E: Resource>(&self) -> BaseService<E> {
        if self.backend() == DbBackend::MySql {
            self.warn_about_schema::<E>();
        }
        BaseService::new(self.clone())
    }

    /// The first time a service of `E` is made: [`check_schema`](Self::check_schema)
    /// in the background, its findings logged as warnings.
    fn warn_about_schema<E: Resource>(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let first = self
            .inner
            .schema_checked
            .lock()
            .map(|mut seen| seen.insert(std::any::TypeId::of::<E>()))
            .unwrap_or(false);
        if first {
            let keel = self.clone();
            runtime.spawn(async move {
                match keel.check_schema::<E>().await {
                    Ok(report) => {
                        for problem in report.problems() {
                            tracing::warn!(resource = E::NAME, "{problem}");
                        }
                    }
                    Err(err) => {
                        tracing::debug!(resource = E::NAME, error = %err, "schema not checked");
                    }
                }
            });
        }
    }

    /// Runs `f` in a transaction and commits it when `f` returns `Ok`.
    ///
    /// `f` receives the transaction ([`Tx`]); services bound to it
    /// (`tx.service::<E>()`, `service.with(&tx)`) read and write in it, and
    /// `tx.transaction(...)` nests a savepoint. When the database aborts the
    /// transaction because it lost a race (a serialization failure, a
    /// deadlock, a lock-wait timeout: `ABORTED`), the whole closure runs
    /// again in a new transaction, as `options`' retry policy and the
    /// context's deadline allow, so it must be re-runnable: it may not move
    /// anything out of its environment. Any other error rolls back and is
    /// returned unchanged. Events and after-commit work queued in it run
    /// after the commit only. See [the `tx` module](crate::tx) for the rules.
    ///
    /// ```no_run
    /// # mod account {
    /// #     use keel::prelude::*;
    /// #     use sea_orm::entity::prelude::*;
    /// #     use serde::{Deserialize, Serialize};
    /// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
    /// #     #[sea_orm(table_name = "accounts")]
    /// #     pub struct Model {
    /// #         #[sea_orm(primary_key)]
    /// #         pub id: i64,
    /// #         pub balance: i64,
    /// #     }
    /// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    /// #     pub enum Relation {}
    /// #     impl ActiveModelBehavior for ActiveModel {}
    /// # }
    /// # async fn demo(keel: keel::Keel) -> keel::Result<()> {
    /// use keel::tx::{Isolation, TxOptions};
    /// use keel::{Context, Error};
    ///
    /// let ctx = Context::actor("alice");
    /// keel.transaction(&ctx, TxOptions::new().isolation(Isolation::Serializable), |tx| {
    ///     let ctx = ctx.clone();
    ///     async move {
    ///         let accounts = tx.service::<account::Entity>();
    ///         let from = accounts.get_for_update(&ctx, 1).await?;
    ///         if from.balance < 100 {
    ///             return Err(Error::rejected("INSUFFICIENT_FUNDS", "not enough money"));
    ///         }
    ///         let to = accounts.get_for_update(&ctx, 2).await?;
    ///         accounts.update(&ctx, 1, account::AccountPatch::default().balance(from.balance - 100)).await?;
    ///         accounts.update(&ctx, 2, account::AccountPatch::default().balance(to.balance + 100)).await?;
    ///         Ok(())
    ///     }
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F, Fut>(&self, ctx: &Context, options: TxOptions, f: F) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        crate::tx::run(self, ctx, &options, f).await
    }

    /// The read-through cache (in-process, plus Redis when configured).
    pub fn cache(&self) -> &crate::cache::Cache {
        &self.inner.cache
    }

    /// The in-process event bus: subscribe to events, read delivery statistics.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Adds hooks for resource `E`: they run inside every write of `E`, in
    /// the order they were added. Add them at start-up.
    pub fn add_hooks<E: Resource>(&self, hooks: impl Hooks<E>) {
        self.inner.hooks.add::<E>(hooks);
    }

    pub(crate) fn hooks<E: Resource>(&self) -> Option<HookList<E>> {
        self.inner.hooks.get::<E>()
    }

    /// The database connection pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.inner.db.get_database_backend()
    }

    /// The configuration in force.
    pub fn config(&self) -> &KeelConfig {
        &self.inner.config
    }

    pub(crate) fn exact_collation_cell(&self) -> &tokio::sync::OnceCell<Option<&'static str>> {
        &self.inner.exact_collation
    }

    pub(crate) fn long_text_cells(&self) -> &crate::schema::LongTextCells {
        &self.inner.long_text
    }

    pub(crate) fn query_permits(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.inner.query_permits)
    }

    pub(crate) fn signer(&self) -> &TokenSigner {
        &self.inner.signer
    }

    /// Creates the table of entity `E` (and its indexes) if it does not exist,
    /// from the entity definition. Handy for examples and tests; use
    /// migrations in production.
    ///
    /// On MySQL / MariaDB the table's text compares exactly (a binary `NO
    /// PAD` collation: `utf8mb4_nopad_bin`, or `utf8mb4_0900_bin` on MySQL
    /// 8) and its timestamps keep microseconds (`DATETIME(6)`), whatever
    /// the database's defaults; a migration of the application's own should
    /// do the same (see [`check_schema`](Self::check_schema)).
    pub async fn create_table<E: sea_orm::EntityTrait>(&self, entity: E) -> Result<()> {
        let collation = crate::schema::exact_collation(self).await?;
        crate::schema::create_entity_table_with(self.db(), entity, collation)
            .await
            .map_err(Error::from)
    }

    /// Creates, if they do not exist, the indexes that resource `E`'s
    /// declared queries need, and returns the names of those it made.
    ///
    /// For the key and for each sortable field (`#[service(sort)]`), one
    /// index on (tenant, field, key) over the rows that are not
    /// soft-deleted: lists in any declared order, their keyset pages and
    /// counts then read an index instead of the whole table. PostgreSQL and
    /// SQLite make it a partial index (`WHERE deleted_at IS NULL`), so
    /// deleted rows cost it nothing; MySQL / MariaDB have no partial
    /// indexes, and put `deleted_at` before the field instead, after the
    /// tenant: (tenant, deleted_at, field, key) for a tenant-scoped
    /// resource, (deleted_at, field, key) otherwise. The key gets one only on
    /// a soft-deleted or tenant-scoped resource (otherwise the primary key
    /// serves), and a `TEXT` column on MySQL gets none (MySQL cannot index
    /// it whole). Each is named `{table}_keel_{field}`.
    ///
    /// ```no_run
    /// # async fn demo<E: keel::Resource>(keel: keel::Keel) -> keel::Result<()> {
    /// keel.create_table(E::default()).await?;
    /// keel.create_indexes::<E>().await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_indexes<E: Resource>(&self) -> Result<Vec<String>> {
        crate::schema::create_indexes::<E, _>(self.db())
            .await
            .map_err(Error::from)
    }

    /// Creates the tables Keel itself needs (`keel_audit`, `keel_outbox`,
    /// `keel_inbox`) if they do not exist, and brings one made by an older
    /// Keel up to date (on MySQL: exact text, microsecond times). Run it
    /// once at start-up, before the first write.
    pub async fn migrate(&self) -> Result<()> {
        let collation = crate::schema::exact_collation(self).await?;
        crate::audit::log_table(self.db(), collation)
            .await
            .map_err(Error::from)?;
        crate::outbox::create_tables(self).await
    }

    /// Whether events are written to the transactional outbox (a sink is
    /// configured: [`KeelConfig::events`]).
    pub fn outbox_enabled(&self) -> bool {
        self.inner.config.events.sink.is_durable()
    }

    /// The signal the relays of this process wait on.
    pub(crate) fn outbox_wake(&self) -> Arc<tokio::sync::Notify> {
        self.inner.outbox_wake.clone()
    }

    /// A transaction (or statement) that wrote outbox rows committed: wakes
    /// this process's relays at once and, on PostgreSQL, has every other
    /// instance's relays woken by a `NOTIFY keel_outbox` sent by a task of
    /// its own. A `NOTIFY` inside the write itself would serialise every
    /// writer's commit on PostgreSQL's notification queue lock (measured:
    /// 45% fewer writes a second); sent apart and coalesced, it costs the
    /// writes nothing and a relay elsewhere learns of new rows within
    /// milliseconds.
    pub(crate) fn outbox_committed(&self) {
        self.inner.outbox_wake.notify_waiters();
        if self.backend() != DbBackend::Postgres {
            return;
        }
        self.inner.outbox_notifier.get_or_init(|| {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(notifier(
                    Arc::downgrade(&self.inner),
                    self.inner.outbox_notify.clone(),
                ));
            }
        });
        self.inner.outbox_notify.notify_one();
    }

    /// Checks the table of resource `E` against what Keel's guarantees need
    /// of it, and reports each column that falls short with the statement
    /// that fixes it. Only MySQL / MariaDB can fall short: a text column
    /// that is unique or sortable but has a collation that does not compare
    /// exactly (the server default `utf8mb4_general_ci` ignores case and
    /// accents; every `PAD SPACE` collation, `utf8mb4_bin` included,
    /// ignores trailing spaces), a sortable text column that can hold
    /// longer values than the server compares when it sorts (16,383
    /// `utf8mb4` characters on connections Keel opens; `TEXT` can hold
    /// 65,535: `order_by` on such a field is refused with
    /// `INVALID_ARGUMENT`, since keyset pages over it could skip or repeat
    /// rows), or a server-owned timestamp without microseconds. Keys,
    /// tenants and `=` / `!=` / `IN` compare exactly whatever the collation.
    ///
    /// The first service of each resource made on MySQL runs this check in
    /// the background and logs what it finds as warnings.
    ///
    /// ```no_run
    /// # async fn demo<E: keel::Resource>(keel: keel::Keel) -> keel::Result<()> {
    /// let report = keel.check_schema::<E>().await?;
    /// for problem in report.problems() {
    ///     eprintln!("{problem}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn check_schema<E: Resource>(&self) -> Result<crate::SchemaReport> {
        crate::schema::check::<E>(self).await
    }

    /// The audit log.
    pub fn audit_log(&self) -> crate::audit::AuditLog {
        crate::audit::AuditLog::new(self.clone())
    }

    /// The connections of the pool as they are now.
    pub fn pool_connections(&self) -> PoolConnections {
        #[allow(dead_code, reason = "unused in a build without a database feature")]
        fn counts<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> PoolConnections {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            PoolConnections {
                in_use: pool.size().saturating_sub(idle),
                idle,
                max: pool.options().get_max_connections(),
            }
        }
        let db = self.db();
        match self.backend() {
            #[cfg(feature = "postgres")]
            DbBackend::Postgres => counts(db.get_postgres_connection_pool()),
            #[cfg(feature = "mysql")]
            DbBackend::MySql => counts(db.get_mysql_connection_pool()),
            #[cfg(feature = "sqlite")]
            DbBackend::Sqlite => counts(db.get_sqlite_connection_pool()),
            // A connection this build cannot have (or a mock): no pool.
            #[allow(unreachable_patterns, reason = "every backend has its feature")]
            _ => {
                let _ = db;
                PoolConnections::default()
            }
        }
    }

    /// Sets the `keel_db_pool_connections{state}` gauges (`in_use`, `idle`,
    /// `max`) from the pool as it is now. The runtime's database component
    /// does it every 5 s.
    pub fn record_pool_metrics(&self) {
        let PoolConnections { in_use, idle, max } = self.pool_connections();
        for (state, n) in [("in_use", in_use), ("idle", idle), ("max", max)] {
            metrics::gauge!("keel_db_pool_connections", "state" => state).set(f64::from(n));
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) -> Result<()> {
        self.inner.db.clone().close().await.map_err(Error::from)
    }
}

/// The connections of a [`Keel`]'s pool ([`Keel::pool_connections`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConnections {
    /// Connections lent out now.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// Sends `NOTIFY keel_outbox` after commits that wrote outbox rows, those
/// of 2 ms coalesced into one, until the `Keel` is dropped.
async fn notifier(keel: std::sync::Weak<Inner>, signal: Arc<tokio::sync::Notify>) {
    loop {
        signal.notified().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let Some(inner) = keel.upgrade() else {
            return;
        };
        let db = inner.db.clone();
        drop(inner);
        if let Err(err) = db
            .execute_unprepared("SELECT pg_notify('keel_outbox', '')")
            .await
        {
            tracing::debug!(error = %err, "NOTIFY keel_outbox failed; relays elsewhere poll");
        }
    }
}

fn connect_options(config: &KeelConfig) -> ConnectOptions {
    let PoolConfig {
        max_connections,
        min_connections,
        acquire_timeout,
        idle_timeout,
        test_before_acquire,
        statement_timeout,
        ..
    } = config.pool.clone();
    let url = config.database_url.as_str();
    // An in-memory SQLite database lives as long as its connection and is
    // private to it: keep exactly one connection, forever.
    let in_memory =
        url.starts_with("sqlite:") && url.contains(":memory:") || url.contains("mode=memory");
    let (max, min, idle) = if in_memory {
        (1, 1, None)
    } else {
        (max_connections, min_connections, idle_timeout)
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max)
        .min_connections(min)
        .acquire_timeout(acquire_timeout)
        .connect_timeout(acquire_timeout)
        .test_before_acquire(test_before_acquire)
        .sqlx_logging(false);
    #[cfg(feature = "sqlite")]
    options.map_sqlx_sqlite_opts(|o| {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
    });
    if let Some(idle) = idle {
        options.idle_timeout(idle);
    }
    #[allow(
        unused_variables,
        reason = "unused in a build without PostgreSQL or MySQL"
    )]
    let timeout_ms = statement_timeout.map(|timeout| timeout.as_millis().max(1));
    #[cfg(feature = "postgres")]
    if let Some(ms) = timeout_ms {
        options.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.to_string())]));
    }
    #[cfg(feature = "mysql")]
    options.map_sqlx_mysql_pool_opts(move |pool| {
        pool.after_connect(move |conn, _| Box::pin(mysql_session(conn, timeout_ms)))
    });
    if in_memory {
        options.max_lifetime(None::<Duration>);
    }
    #[cfg(feature = "tls")]
    crate::tls::apply_to_database(&mut options, url, &config.tls);
    options
}

#[cfg(feature = "mysql")]
/// Each new MySQL / MariaDB connection: the sort key length text is sorted
/// by (see [`crate::schema::MAX_SORT_LENGTH`]), and the statement timeout:
/// MariaDB's `max_statement_time` (seconds, every statement), else MySQL's
/// `max_execution_time` (milliseconds, reads).
async fn mysql_session(
    conn: &mut sea_orm::sqlx::MySqlConnection,
    timeout_ms: Option<u128>,
) -> std::result::Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{AssertSqlSafe, Executor, raw_sql};
    if let Err(err) = conn
        .execute(raw_sql(AssertSqlSafe(crate::schema::MAX_SORT_LENGTH)))
        .await
    {
        // Then sorts compare what the server's setting says, and the
        // longer sortable columns are refused (`schema::long_text`).
        tracing::warn!(error = %err, "cannot raise max_sort_length on this MySQL connection");
    }
    let Some(ms) = timeout_ms else {
        return Ok(());
    };
    let [mariadb, mysql] = crate::tx::mysql_timeout_statements(Some(ms));
    if conn.execute(raw_sql(AssertSqlSafe(mariadb))).await.is_ok() {
        return Ok(());
    }
    conn.execute(raw_sql(AssertSqlSafe(mysql)))
        .await
        .map(|_| ())
}

/// Builds a [`Keel`] step by step.
///
/// ```no_run
/// # async fn demo() -> keel::Result<()> {
/// let keel = keel::Keel::builder()
///     .database_url("postgres://postgres@127.0.0.1:5432/shop")
///     .max_connections(16)
///     .page_token_secret("32 or more random bytes, the same on every instance")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct KeelBuilder {
    config: KeelConfig,
    subscribers: Vec<Subscription>,
}

impl KeelBuilder {
    /// Starts from an existing configuration (for instance [`KeelConfig::from_env`]).
    pub fn from_config(config: KeelConfig) -> Self {
        KeelBuilder {
            config,
            subscribers: Vec::new(),
        }
    }

    /// The database URL.
    #[must_use]
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.config.database_url = url.into();
        self
    }

    /// The service name: the first part of event types (`shop.product.created`).
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = name.into();
        self
    }

    /// Where events go: with a sink, every event is written to the
    /// transactional outbox in its transaction and a [`Relay`](crate::outbox::Relay)
    /// publishes it.
    #[must_use]
    pub fn events(mut self, events: crate::outbox::EventsConfig) -> Self {
        self.config.events = events;
        self
    }

    /// Registers an event subscriber when connecting.
    #[must_use]
    pub fn subscriber(mut self, subscription: Subscription) -> Self {
        self.subscribers.push(subscription);
        self
    }

    /// The certificate authority and client certificate of TLS connections
    /// whose URLs name none (see [`crate::tls`]).
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.config.tls = tls;
        self
    }

    /// The Redis URL of the shared cache tier.
    #[must_use]
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.cache.redis_url = Some(url.into());
        self
    }

    /// The cache settings.
    #[must_use]
    pub fn cache(mut self, cache: crate::cache::CacheConfig) -> Self {
        self.config.cache = cache;
        self
    }

    /// Pool size.
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.config.pool.max_connections = n;
        self
    }

    /// Idle connections kept.
    #[must_use]
    pub fn min_connections(mut self, n: u32) -> Self {
        self.config.pool.min_connections = n;
        self
    }

    /// How long to wait for a free connection.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.config.pool.acquire_timeout = timeout;
        self
    }

    /// Idle connection lifetime (`None`: forever).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.pool.idle_timeout = timeout;
        self
    }

    /// The longest a statement may run on the server (default 30 s; `None`:
    /// no limit). See [`PoolConfig::statement_timeout`].
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.pool.statement_timeout = timeout;
        self
    }

    /// Connections lists and counts may not take (default a quarter of the
    /// pool). See [`PoolConfig::reserved_connections`].
    #[must_use]
    pub fn reserved_connections(mut self, n: u32) -> Self {
        self.config.pool.reserved_connections = Some(n);
        self
    }

    /// Ping each connection taken from the pool (default off).
    #[must_use]
    pub fn test_before_acquire(mut self, ping: bool) -> Self {
        self.config.pool.test_before_acquire = ping;
        self
    }

    /// Page-size bounds.
    #[must_use]
    pub fn page(mut self, page: PageConfig) -> Self {
        self.config.page = page;
        self
    }

    /// Filter size bounds.
    #[must_use]
    pub fn limits(mut self, limits: QueryLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// The page-token signing key.
    #[must_use]
    pub fn page_token_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.config.page_token_secret = Some(Secret::new(secret));
        self
    }

    /// Whether `connect` creates Keel's own tables when missing (default on).
    #[must_use]
    pub fn auto_migrate(mut self, on: bool) -> Self {
        self.config.auto_migrate = on;
        self
    }

    /// Retries of a write that lost a race.
    #[must_use]
    pub fn write_retries(mut self, retries: usize) -> Self {
        self.config.write_retries = retries;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &KeelConfig {
        &self.config
    }

    /// Connects, and registers the subscribers.
    pub async fn connect(self) -> Result<Keel> {
        let keel = Keel::connect(self.config).await?;
        for subscription in self.subscribers {
            keel.events().subscribe(subscription)?;
        }
        Ok(keel)
    }
}
