//! Classification of database errors from codes, never from message text.

use std::sync::Arc;

use sea_orm::sqlx::{self, error::ErrorKind};
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

use super::{BoxError, Error, FieldError, ValidationErrors};

/// What a database error means to a service, decided once from its code.
#[derive(Debug)]
pub(crate) enum DbFailure {
    /// A unique index rejected the row.
    Unique(DbErr),
    /// A foreign key rejected the row.
    ForeignKey(DbErr),
    /// A NOT NULL or CHECK constraint rejected the row; the column when the driver names it.
    Constraint {
        column: Option<String>,
        source: DbErr,
    },
    /// Serialization failure, deadlock, lock wait timeout, busy database: safe to retry.
    Retriable(DbErr),
    /// The database cancelled the statement on a timeout.
    Timeout(DbErr),
    /// The database cannot be reached or the pool is exhausted.
    Unavailable(&'static str, DbErr),
    /// A statement matched no row.
    NoRow(DbErr),
    /// Anything else.
    Other(DbErr),
}

impl DbFailure {
    /// Turns the classification into the public error, naming `resource`.
    pub(crate) fn into_error(self, resource: &'static str) -> Error {
        match self {
            DbFailure::Unique(source) => {
                tracing::debug!(error = %source, "unique violation");
                Error::AlreadyExists {
                    resource,
                    field: None,
                }
            }
            DbFailure::ForeignKey(source) => {
                tracing::debug!(error = %source, "foreign key violation");
                Error::ForeignKey { resource }
            }
            DbFailure::Constraint { column, source } => {
                let pointer = column.map(|c| format!("/{c}")).unwrap_or_default();
                let mut errors = ValidationErrors::new();
                errors.push(FieldError::new(
                    pointer,
                    "CONSTRAINT",
                    "the value is rejected by a rule of the database",
                ));
                tracing::debug!(error = %source, "constraint violation");
                Error::Validation(errors)
            }
            DbFailure::Retriable(source) => Error::Aborted {
                source: Box::new(source),
            },
            DbFailure::Timeout(source) => {
                tracing::debug!(error = %source, "statement timed out");
                Error::DeadlineExceeded
            }
            DbFailure::Unavailable(reason, source) => Error::Unavailable {
                reason,
                source: Some(Box::new(source) as BoxError),
            },
            DbFailure::NoRow(source) | DbFailure::Other(source) => Error::internal(source),
        }
    }
}

/// Classifies a [`DbErr`].
pub(crate) fn classify(err: DbErr) -> DbFailure {
    match &err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
            DbFailure::Unavailable("database connection pool timed out", err)
        }
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => {
            DbFailure::Unavailable("database connection closed", err)
        }
        DbErr::Conn(runtime) => match sqlx_error(runtime) {
            Some(sqlx_err) => match classify_sqlx(sqlx_err) {
                Some(kind) => kind.with(err),
                None => DbFailure::Unavailable("database unreachable", err),
            },
            None => DbFailure::Unavailable("database unreachable", err),
        },
        DbErr::Exec(runtime) | DbErr::Query(runtime) => {
            match sqlx_error(runtime).and_then(classify_sqlx) {
                Some(kind) => kind.with(err),
                None => DbFailure::Other(err),
            }
        }
        DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => DbFailure::NoRow(err),
        _ => DbFailure::Other(err),
    }
}

fn sqlx_error(runtime: &RuntimeErr) -> Option<&sqlx::Error> {
    match runtime {
        RuntimeErr::SqlxError(e) => Some(Arc::as_ref(e)),
        _ => None,
    }
}

/// The classification without the error it will carry.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, reason = "a build without a database classifies nothing")
)]
enum Kind {
    Unique,
    ForeignKey,
    Constraint(Option<String>),
    Retriable,
    Timeout,
    Unavailable(&'static str),
}

impl Kind {
    fn with(self, err: DbErr) -> DbFailure {
        match self {
            Kind::Unique => DbFailure::Unique(err),
            Kind::ForeignKey => DbFailure::ForeignKey(err),
            Kind::Constraint(column) => DbFailure::Constraint {
                column,
                source: err,
            },
            Kind::Retriable => DbFailure::Retriable(err),
            Kind::Timeout => DbFailure::Timeout(err),
            Kind::Unavailable(reason) => DbFailure::Unavailable(reason, err),
        }
    }
}

fn classify_sqlx(err: &sqlx::Error) -> Option<Kind> {
    match err {
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some(Kind::Unavailable("database unreachable")),
        sqlx::Error::PoolTimedOut => Some(Kind::Unavailable("database connection pool timed out")),
        sqlx::Error::PoolClosed => Some(Kind::Unavailable("database connection pool closed")),
        sqlx::Error::WorkerCrashed => Some(Kind::Unavailable("database connection lost")),
        _ => None,
    }
}

fn classify_database(db: &dyn sqlx::error::DatabaseError) -> Option<Kind> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return classify_postgres(pg);
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return classify_mysql(my.number());
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code = db.code().and_then(|c| c.parse::<i32>().ok())?;
        return classify_sqlite(code);
    }
    match db.kind() {
        ErrorKind::UniqueViolation => Some(Kind::Unique),
        ErrorKind::ForeignKeyViolation => Some(Kind::ForeignKey),
        ErrorKind::NotNullViolation | ErrorKind::CheckViolation => Some(Kind::Constraint(None)),
        _ => None,
    }
}

#[cfg(feature = "postgres")]
/// PostgreSQL: SQLSTATE, see <https://www.postgresql.org/docs/current/errcodes-appendix.html>.
fn classify_postgres(pg: &sqlx::postgres::PgDatabaseError) -> Option<Kind> {
    let code = pg.code();
    Some(match code {
        "23505" => Kind::Unique,
        "23503" => Kind::ForeignKey,
        "23502" => Kind::Constraint(pg.column().map(str::to_owned)),
        // 22021 character_not_in_repertoire (NUL in text), 22P05
        // untranslatable_character (`\u0000` in jsonb): data PostgreSQL cannot store.
        "23514" | "23P01" | "22001" | "22003" | "22021" | "22P05" => {
            Kind::Constraint(pg.column().map(str::to_owned))
        }
        "40001" | "40P01" | "55P03" => Kind::Retriable,
        "57014" => Kind::Timeout,
        "53300" | "57P01" | "57P02" | "57P03" => Kind::Unavailable("database unavailable"),
        _ if code.starts_with("08") => Kind::Unavailable("database unreachable"),
        _ => return None,
    })
}

#[cfg(feature = "mysql")]
/// MySQL / MariaDB: server error numbers.
fn classify_mysql(number: u16) -> Option<Kind> {
    Some(match number {
        // ER_DUP_KEY, ER_DUP_ENTRY, ER_DUP_UNIQUE, ER_DUP_ENTRY_WITH_KEY_NAME
        1022 | 1062 | 1169 | 1586 => Kind::Unique,
        // ER_NO_REFERENCED_ROW(_2), ER_ROW_IS_REFERENCED(_2)
        1216 | 1217 | 1451 | 1452 => Kind::ForeignKey,
        // ER_BAD_NULL_ERROR, ER_CHECK_CONSTRAINT_VIOLATED (MySQL), ER_CONSTRAINT_FAILED (MariaDB),
        // ER_DATA_TOO_LONG, ER_WARN_DATA_OUT_OF_RANGE
        1048 | 3819 | 4025 | 1406 | 1264 => Kind::Constraint(None),
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
        1213 | 1205 => Kind::Retriable,
        // ER_QUERY_TIMEOUT (MySQL max_execution_time), ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_INTERRUPTED
        3024 | 1969 | 1317 => Kind::Timeout,
        // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, ER_SERVER_SHUTDOWN
        1040 | 1203 | 1053 => Kind::Unavailable("database unavailable"),
        _ => return None,
    })
}

#[cfg(feature = "sqlite")]
/// SQLite: extended result codes, see <https://www.sqlite.org/rescode.html>.
fn classify_sqlite(code: i32) -> Option<Kind> {
    Some(match code {
        2067 | 1555 => Kind::Unique,
        787 => Kind::ForeignKey,
        1299 | 275 => Kind::Constraint(None),
        // SQLITE_BUSY and SQLITE_LOCKED with their extended forms
        5 | 261 | 517 | 773 | 6 | 262 | 518 => Kind::Retriable,
        // SQLITE_INTERRUPT
        9 => Kind::Timeout,
        // SQLITE_CANTOPEN
        14 => Kind::Unavailable("database file cannot be opened"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_numbers_are_classified() {
        assert!(matches!(classify_mysql(1062), Some(Kind::Unique)));
        assert!(matches!(classify_mysql(1452), Some(Kind::ForeignKey)));
        assert!(matches!(classify_mysql(1213), Some(Kind::Retriable)));
        assert!(matches!(classify_mysql(1205), Some(Kind::Retriable)));
        assert!(matches!(classify_mysql(4025), Some(Kind::Constraint(None))));
        assert!(classify_mysql(1064).is_none());
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_codes_are_classified() {
        assert!(matches!(classify_sqlite(2067), Some(Kind::Unique)));
        assert!(matches!(classify_sqlite(1555), Some(Kind::Unique)));
        assert!(matches!(classify_sqlite(787), Some(Kind::ForeignKey)));
        assert!(matches!(classify_sqlite(5), Some(Kind::Retriable)));
        assert!(matches!(classify_sqlite(517), Some(Kind::Retriable)));
        assert!(classify_sqlite(1).is_none());
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        let failure = classify(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        let err = failure.into_error("product");
        assert_eq!(err.code(), "UNAVAILABLE");
        assert!(err.is_retriable());
    }

    #[test]
    fn unknown_errors_are_internal_and_hide_their_text() {
        let err: Error = DbErr::Custom("secret connection string".into()).into();
        assert_eq!(err.code(), "INTERNAL");
        assert_eq!(err.to_string(), "internal error");
    }
}
