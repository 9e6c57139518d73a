//! The status of a service, as the lifecycle runtime moves it and health
//! reports it.

use serde::Serialize;

/// Where a service (a [`Runtime`](crate::lifecycle::Runtime)) stands.
///
/// Legal transitions: `Stopped -> Starting -> Running -> Stopping ->
/// Stopped`, any state `-> Error`, and `Error -> Starting` (a restart).
/// Anything else is refused with `ILLEGAL_TRANSITION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Not running.
    Stopped,
    /// Starting its components.
    Starting,
    /// Serving.
    Running,
    /// Stopping its components.
    Stopping,
    /// Failed; can be started again.
    Error,
}

impl ServiceStatus {
    /// Whether `self -> next` is a legal transition.
    ///
    /// ```
    /// use keel::lifecycle::ServiceStatus::*;
    /// assert!(Stopped.can_become(Starting));
    /// assert!(Running.can_become(Error));
    /// assert!(Error.can_become(Starting));
    /// assert!(!Stopped.can_become(Running));
    /// assert!(!Running.can_become(Starting));
    /// ```
    pub fn can_become(self, next: ServiceStatus) -> bool {
        use ServiceStatus::*;
        matches!(
            (self, next),
            (Stopped, Starting)
                | (Starting, Running)
                | (Running, Stopping)
                | (Stopping, Stopped)
                | (Error, Starting)
        ) || (next == Error && self != Error)
    }

    /// `stopped`, `starting`, `running`, `stopping` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Stopped => "stopped",
            ServiceStatus::Starting => "starting",
            ServiceStatus::Running => "running",
            ServiceStatus::Stopping => "stopping",
            ServiceStatus::Error => "error",
        }
    }
}

impl std::fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
