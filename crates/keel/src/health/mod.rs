//! Health: checks, their thresholds and history, and the report.
//!
//! A [`HealthCheck`] looks at one thing (the database, Redis, a disk volume,
//! the runtime itself) and says what it found: an [`Observation`]. The
//! [`HealthCoordinator`] runs every check concurrently on a period, in the
//! background, each under its own timeout (a check that hangs is recorded as
//! Unhealthy with a timeout error and delays no other), and turns the
//! observations into a status per check with thresholds, so one bad probe
//! does not flap the service:
//!
//! - a check goes **Degraded** on its first failure, **Unhealthy** after
//!   `failure_threshold` consecutive failures, and back to **Healthy** only
//!   after `recovery_threshold` consecutive successes;
//! - an observation that is itself Degraded (a volume below its warning
//!   threshold, a half-open breaker) makes the check Degraded at once.
//!
//! The overall status is Unhealthy if any critical check is Unhealthy,
//! Degraded if any check is not Healthy, else Healthy. Probes
//! ([`HealthCoordinator::report`], `liveness`, `readiness`) read the latest
//! snapshot and never run a check inline.

mod checks;
mod coordinator;
#[cfg(feature = "grpc-health")]
mod grpc;
mod service_status;
mod state;
#[cfg(feature = "volume-check")]
mod volume_check;

pub use checks::DatabaseCheck;
pub use coordinator::{CheckReport, HealthCoordinator, HealthReport, HistoryEntry};
#[cfg(feature = "grpc-health")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc-health")))]
pub use grpc::GrpcHealth;
pub use service_status::ServiceStatus;
pub use state::CheckState;
#[cfg(feature = "volume-check")]
#[cfg_attr(docsrs, doc(cfg(feature = "volume-check")))]
pub use volume_check::VolumeCheck;

use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

/// Healthy, Degraded or Unhealthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working, with a problem worth a look (a non-critical dependency
    /// down, a first failure, space running low).
    Degraded,
    /// Not working.
    Unhealthy,
}

impl HealthStatus {
    /// The value of the `keel_health_check_status` gauge: 0, 1 or 2.
    pub fn gauge(self) -> f64 {
        match self {
            HealthStatus::Healthy => 0.0,
            HealthStatus::Degraded => 1.0,
            HealthStatus::Unhealthy => 2.0,
        }
    }

    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// What one run of a check found.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Healthy (a success), Degraded (a warning) or Unhealthy (a failure).
    pub status: HealthStatus,
    /// A measured value, such as a latency or free space.
    pub value: Option<f64>,
    /// The unit of `value`, such as `ms` or `%`.
    pub unit: Option<&'static str>,
    /// What is wrong, for a Degraded or Unhealthy observation. Keep
    /// credentials and connection strings out; the report also masks any
    /// `scheme://user:password@` it finds.
    pub message: Option<String>,
}

impl Observation {
    /// A success.
    pub fn healthy() -> Self {
        Observation {
            status: HealthStatus::Healthy,
            value: None,
            unit: None,
            message: None,
        }
    }

    /// A warning.
    pub fn degraded(message: impl Into<String>) -> Self {
        Observation {
            status: HealthStatus::Degraded,
            message: Some(message.into()),
            ..Observation::healthy()
        }
    }

    /// A failure.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Observation {
            status: HealthStatus::Unhealthy,
            message: Some(message.into()),
            ..Observation::healthy()
        }
    }

    /// Adds the measured value and its unit.
    #[must_use]
    pub fn with_value(mut self, value: f64, unit: &'static str) -> Self {
        self.value = Some(value);
        self.unit = Some(unit);
        self
    }
}

/// One thing to check.
///
/// ```
/// use keel::health::{HealthCheck, Observation};
///
/// struct QueueDepth;
///
/// impl HealthCheck for QueueDepth {
///     fn name(&self) -> &str { "queue" }
///     async fn check(&self) -> Observation {
///         let depth = 12.0; // measure it
///         if depth > 1000.0 {
///             Observation::degraded("the queue is backing up").with_value(depth, "jobs")
///         } else {
///             Observation::healthy().with_value(depth, "jobs")
///         }
///     }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// The check's name in the report, unique within a coordinator.
    fn name(&self) -> &str;

    /// Whether the service is unusable while this check is Unhealthy
    /// (default: no).
    fn critical(&self) -> bool {
        false
    }

    /// Looks once. The coordinator bounds it with the check's timeout.
    fn check(&self) -> impl Future<Output = Observation> + Send;
}

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Observation> + Send + 'a>>;

/// [`HealthCheck`] behind a pointer.
pub(crate) trait DynHealthCheck: Send + Sync {
    fn name(&self) -> &str;
    fn critical(&self) -> bool;
    fn check(&self) -> CheckFuture<'_>;
}

impl<C: HealthCheck> DynHealthCheck for C {
    fn name(&self) -> &str {
        HealthCheck::name(self)
    }
    fn critical(&self) -> bool {
        HealthCheck::critical(self)
    }
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(HealthCheck::check(self))
    }
}

/// How a check is run and judged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckPolicy {
    /// How long one run may take before it counts as a failure (default 2 s).
    pub timeout: Duration,
    /// Consecutive failures that make the check Unhealthy (default 3).
    pub failure_threshold: u32,
    /// Consecutive successes that make it Healthy again (default 2).
    pub recovery_threshold: u32,
    /// Runs kept in its history (default 10).
    pub history: usize,
    /// Overrides the check's own [`HealthCheck::critical`].
    pub critical: Option<bool>,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
            recovery_threshold: 2,
            history: 10,
            critical: None,
        }
    }
}

impl CheckPolicy {
    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the thresholds (each at least 1).
    #[must_use]
    pub fn thresholds(mut self, failures: u32, recoveries: u32) -> Self {
        self.failure_threshold = failures.max(1);
        self.recovery_threshold = recoveries.max(1);
        self
    }

    /// Sets how many runs the history keeps.
    #[must_use]
    pub fn history(mut self, runs: usize) -> Self {
        self.history = runs;
        self
    }

    /// Makes the check critical, or not, whatever it says.
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = Some(critical);
        self
    }
}

/// Masks the credentials of any URL in `text` (`scheme://user:secret@host`
/// becomes `scheme://***@host`).
pub(crate) fn scrub(text: &str) -> String {
    static URL_CREDENTIALS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@").expect("a valid pattern")
    });
    URL_CREDENTIALS.replace_all(text, "${1}***@").into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            super::scrub("cannot reach postgres://app:hunter2@db:5432/shop (refused)"),
            "cannot reach postgres://***@db:5432/shop (refused)"
        );
        assert_eq!(
            super::scrub("redis://:s3cret@127.0.0.1:6379 and redis://127.0.0.1"),
            "redis://***@127.0.0.1:6379 and redis://127.0.0.1"
        );
    }
}
