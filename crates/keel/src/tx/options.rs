//! What a transaction is asked to be: isolation, access, timeout, retries.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The isolation level of a transaction.
///
/// PostgreSQL and MySQL/MariaDB honour all four (PostgreSQL runs
/// `READ UNCOMMITTED` as `READ COMMITTED`). SQLite transactions are always
/// serializable: Keel opens every SQLite transaction that may write with
/// `BEGIN IMMEDIATE`, so writers take turns and the level is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// `READ UNCOMMITTED`.
    ReadUncommitted,
    /// `READ COMMITTED` (PostgreSQL's default).
    ReadCommitted,
    /// `REPEATABLE READ` (MySQL's default).
    RepeatableRead,
    /// `SERIALIZABLE`: concurrent transactions behave as if run one after
    /// the other; the database aborts one that cannot (`40001`), and Keel
    /// retries it.
    Serializable,
}

impl Isolation {
    pub(crate) fn sea_orm(self) -> sea_orm::IsolationLevel {
        match self {
            Isolation::ReadUncommitted => sea_orm::IsolationLevel::ReadUncommitted,
            Isolation::ReadCommitted => sea_orm::IsolationLevel::ReadCommitted,
            Isolation::RepeatableRead => sea_orm::IsolationLevel::RepeatableRead,
            Isolation::Serializable => sea_orm::IsolationLevel::Serializable,
        }
    }
}

/// How often, and how patiently, a transaction that lost a race is run again.
///
/// Only `ABORTED` errors are retried: PostgreSQL serialization failures and
/// deadlocks (SQLSTATE `40001`, `40P01`, and `55P03` for `NOWAIT`),
/// MySQL/MariaDB deadlocks and lock-wait timeouts (1213, 1205), a busy SQLite
/// database, and [`Error::aborted`](crate::Error::aborted) returned by the
/// closure itself. Delays grow exponentially from `min_delay` to `max_delay`,
/// with full jitter, and never run past the context's deadline.
///
/// ```
/// use keel::tx::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::attempts(5).min_delay(Duration::from_millis(10));
/// assert_eq!(policy.max_attempts(), 5);
/// assert_eq!(RetryPolicy::never().max_attempts(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: usize,
    min_delay: Duration,
    max_delay: Duration,
}

impl RetryPolicy {
    /// Up to `n` attempts in all (at least one).
    pub fn attempts(n: usize) -> Self {
        RetryPolicy {
            max_attempts: n.max(1),
            ..RetryPolicy::default()
        }
    }

    /// One attempt: a lost race is returned as `ABORTED` at once.
    pub fn never() -> Self {
        RetryPolicy::attempts(1)
    }

    /// The first delay (before jitter).
    #[must_use]
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self.max_delay = self.max_delay.max(delay);
        self
    }

    /// The longest delay.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay.max(self.min_delay);
        self
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> usize {
        self.max_attempts
    }

    /// The delays before the second, third, ... attempt.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.max_attempts - 1)
            .build()
    }
}

impl Default for RetryPolicy {
    /// 4 attempts, delays from 5 ms to 250 ms.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(250),
        }
    }
}

/// The options of [`Keel::transaction`](crate::Keel::transaction).
///
/// ```
/// use keel::tx::{Isolation, RetryPolicy, TxOptions};
/// use std::time::Duration;
///
/// let options = TxOptions::new()
///     .isolation(Isolation::Serializable)
///     .statement_timeout(Duration::from_secs(2))
///     .retry(RetryPolicy::attempts(10));
/// assert!(!options.is_read_only());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxOptions {
    isolation: Option<Isolation>,
    read_only: bool,
    statement_timeout: Option<Duration>,
    retry: RetryPolicy,
}

impl TxOptions {
    /// The database's default isolation, read-write, no statement timeout,
    /// the default [`RetryPolicy`].
    pub fn new() -> Self {
        TxOptions::default()
    }

    /// A read-only transaction (`READ ONLY` on PostgreSQL and MySQL; on every
    /// database Keel's services refuse to write in it).
    pub fn read_only() -> Self {
        TxOptions {
            read_only: true,
            ..TxOptions::default()
        }
    }

    /// Sets the isolation level.
    #[must_use]
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Cancels any statement of the transaction that runs longer than
    /// `timeout` (`SET LOCAL statement_timeout` on PostgreSQL, the session's
    /// `max_statement_time` on MariaDB, `max_execution_time` on MySQL, which
    /// bounds only `SELECT`s). SQLite has no statement timeout; the context's
    /// deadline still bounds the whole transaction there. A cancelled
    /// statement is `DEADLINE_EXCEEDED`.
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Whether the transaction is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The isolation level, if set.
    pub fn isolation_level(&self) -> Option<Isolation> {
        self.isolation
    }

    /// The statement timeout, if set.
    pub fn statement_timeout_value(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
}
