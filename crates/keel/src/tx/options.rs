//! What a transaction is asked to be: isolation, access, timeout, retries.

use std::time::Duration;

use crate::resilience::RetryPolicy;

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
