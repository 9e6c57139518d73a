//! The one error type of Keel and its stable codes.
//!
//! Every fallible Keel call returns [`Error`]. Each variant has a stable
//! [`code`](Error::code) (`NOT_FOUND`, `VALIDATION_FAILED`, ...) that never
//! changes once released, and an [`Envelope`] representation that any
//! transport can serialise. Database errors are classified once, from the
//! SQLSTATE (PostgreSQL), the error number (MySQL/MariaDB) or the result code
//! (SQLite), never from message text: see [`Error::from`] for [`sea_orm::DbErr`].

mod db;
mod envelope;
mod field;

pub use envelope::{Envelope, ErrorBody};
pub use field::{FieldError, ValidationErrors};

pub(crate) use db::{DbFailure, classify};

/// A boxed error source, kept for logs and never shown to clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Keel call.
///
/// The `Display` text of a variant is safe to show to a client: it never
/// contains SQL, a driver message or a secret. The underlying cause, when
/// there is one, is kept as the [`source`](std::error::Error::source) for logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource does not exist (or is soft-deleted, or belongs to another tenant).
    #[error("{resource} {id} not found")]
    NotFound {
        /// Resource name, such as `product`.
        resource: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The input failed validation; one entry per invalid field.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// A request argument (filter, order, page token, page size, ...) is malformed or not allowed.
    #[error("{message}")]
    InvalidArgument {
        /// The argument at fault, such as `filter` or `page_token`.
        argument: &'static str,
        /// What is wrong and where, such as `unknown field "colour" at position 1`.
        message: String,
    },
    /// A row with the same unique value already exists.
    #[error("{}", already_exists_message(resource, field.as_deref()))]
    AlreadyExists {
        /// Resource name.
        resource: &'static str,
        /// The unique field that collided, when it can be known.
        field: Option<String>,
    },
    /// The caller expected another version of the row than the current one.
    #[error("version conflict: expected version {expected}, current version is {current}")]
    VersionConflict {
        /// The version the caller expected.
        expected: i64,
        /// The version the row has now.
        current: i64,
    },
    /// The write references a row that does not exist, or deletes one still referenced.
    #[error("{resource} references a row that does not exist or is still referenced")]
    ForeignKey {
        /// Resource name.
        resource: &'static str,
    },
    /// A dependency (database, pool) is unreachable or saturated; retry later.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// A short, client-safe reason such as `database unreachable`.
        reason: &'static str,
        /// The underlying cause, for logs.
        #[source]
        source: Option<BoxError>,
    },
    /// The context's deadline passed, or the database cancelled a statement on timeout.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The caller may not do this.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// Why, in client-safe words.
        message: String,
    },
    /// The transaction lost a race with another one (serialization failure,
    /// deadlock, lock wait timeout, busy database). Retrying it is safe.
    #[error("the transaction was aborted by a concurrent one; retry it")]
    Aborted {
        /// The underlying cause, for logs.
        #[source]
        source: BoxError,
    },
    /// The connection failed while the database was committing: the
    /// transaction may or may not have been applied. Never retried blindly;
    /// the caller must find out (for instance by reading the row back).
    #[error("the outcome of the commit is unknown: the connection failed while committing")]
    CommitOutcomeUnknown {
        /// The underlying cause, for logs.
        #[source]
        source: BoxError,
    },
    /// A rule of the application rejected the request, with a code of the
    /// application's own (such as `INSUFFICIENT_STOCK`); a conflict with the
    /// current state, not a malformed request.
    #[error("{message}")]
    Rejected {
        /// The application's stable code, in `SCREAMING_SNAKE_CASE`.
        code: &'static str,
        /// What is wrong, in client-safe words.
        message: String,
    },
    /// Anything else: a bug or an unexpected failure. Clients see only the code.
    #[error("internal error")]
    Internal {
        /// The underlying cause, for logs.
        #[source]
        source: BoxError,
    },
}

fn already_exists_message(resource: &str, field: Option<&str>) -> String {
    match field {
        Some(field) => format!("a {resource} with this {field} already exists"),
        None => format!("this {resource} already exists"),
    }
}

impl Error {
    /// The stable machine-readable code, such as `VERSION_CONFLICT`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NOT_FOUND",
            Error::Validation(_) => "VALIDATION_FAILED",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::VersionConflict { .. } => "VERSION_CONFLICT",
            Error::ForeignKey { .. } => "FOREIGN_KEY",
            Error::Unavailable { .. } => "UNAVAILABLE",
            Error::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Error::PermissionDenied { .. } => "PERMISSION_DENIED",
            Error::Aborted { .. } => "ABORTED",
            Error::CommitOutcomeUnknown { .. } => "COMMIT_OUTCOME_UNKNOWN",
            Error::Rejected { code, .. } => code,
            Error::Internal { .. } => "INTERNAL",
        }
    }

    /// The broad category of the error, used as `type` in the [`Envelope`].
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Validation(_) => "validation",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::AlreadyExists { .. } | Error::VersionConflict { .. } | Error::Aborted { .. } => {
                "conflict"
            }
            Error::ForeignKey { .. } | Error::Rejected { .. } => "conflict",
            Error::CommitOutcomeUnknown { .. } => "unavailable",
            Error::Unavailable { .. } => "unavailable",
            Error::DeadlineExceeded => "timeout",
            Error::PermissionDenied { .. } => "permission",
            Error::Internal { .. } => "internal",
        }
    }

    /// Whether running the same operation again may succeed without any change
    /// by the caller (a lost race or a dependency that is briefly down).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Aborted { .. } | Error::Unavailable { .. })
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid_argument(argument: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            argument,
            message: message.into(),
        }
    }

    /// Builds an [`Error::Aborted`]: a transaction closure returns it to ask
    /// for the whole transaction to run again (within its retry policy).
    pub fn aborted(reason: impl Into<String>) -> Self {
        Error::Aborted {
            source: reason.into().into(),
        }
    }

    /// Builds an [`Error::Rejected`] with the application's own `code`.
    ///
    /// ```
    /// let err = keel::Error::rejected("INSUFFICIENT_STOCK", "only 3 left of product 7");
    /// assert_eq!(err.code(), "INSUFFICIENT_STOCK");
    /// assert_eq!(err.to_string(), "only 3 left of product 7");
    /// ```
    pub fn rejected(code: &'static str, message: impl Into<String>) -> Self {
        Error::Rejected {
            code,
            message: message.into(),
        }
    }

    /// Wraps any error as [`Error::Internal`].
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Error::Internal {
            source: source.into(),
        }
    }

    /// A single-field [`Error::Validation`].
    pub fn validation(
        pointer: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let mut errors = ValidationErrors::new();
        errors.push(FieldError::new(pointer, code, message));
        Error::Validation(errors)
    }

    /// The client-facing envelope of this error (`{"error": {type, code, message, details}}`).
    ///
    /// `request_id` is added to the details when given. For [`Error::Internal`]
    /// the message is generic and the details carry only the request id: the
    /// cause stays in the logs.
    pub fn to_envelope(&self, request_id: Option<&str>) -> Envelope {
        envelope::build(self, request_id)
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Validation(errors)
    }
}

impl From<sea_orm::DbErr> for Error {
    /// Classifies a database error from its SQLSTATE, error number or result
    /// code. Unique and foreign-key violations carry no resource name here;
    /// the services fill it in.
    fn from(err: sea_orm::DbErr) -> Self {
        classify(err).into_error("resource")
    }
}
