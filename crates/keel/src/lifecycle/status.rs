//! The service status and its legal transitions.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

pub use crate::health::ServiceStatus;
use crate::sync::Unpoison as _;
use crate::{Error, Result};

/// One change of status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    /// The status before.
    pub from: ServiceStatus,
    /// The status after.
    pub to: ServiceStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, when there is more to say (the error of a failed start).
    pub reason: Option<String>,
}

/// The current status, its legal transitions, and its observers.
///
/// [`watch`](Self::watch) gives the latest status (a watch channel);
/// [`subscribe`](Self::subscribe) gives every transition, in order.
///
/// ```
/// use keel::lifecycle::{ServiceStatus, StatusTracker};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let status = StatusTracker::new();
/// let mut transitions = status.subscribe();
/// status.transition(ServiceStatus::Starting, None).unwrap();
/// status.transition(ServiceStatus::Running, None).unwrap();
/// let err = status.transition(ServiceStatus::Starting, None).unwrap_err();
/// assert_eq!(err.code(), "ILLEGAL_TRANSITION");
/// assert_eq!(transitions.recv().await.unwrap().to, ServiceStatus::Starting);
/// assert_eq!(transitions.recv().await.unwrap().to, ServiceStatus::Running);
/// assert_eq!(*status.watch().borrow(), ServiceStatus::Running);
/// # }
/// ```
#[derive(Debug)]
pub struct StatusTracker {
    current: watch::Sender<ServiceStatus>,
    transitions: broadcast::Sender<Transition>,
    gate: Mutex<()>,
}

impl Default for StatusTracker {
    fn default() -> Self {
        StatusTracker::new()
    }
}

impl StatusTracker {
    /// Starts at `Stopped`.
    pub fn new() -> Self {
        StatusTracker {
            current: watch::Sender::new(ServiceStatus::Stopped),
            transitions: broadcast::Sender::new(256),
            gate: Mutex::new(()),
        }
    }

    /// The current status.
    pub fn get(&self) -> ServiceStatus {
        *self.current.borrow()
    }

    /// Moves to `to`, or refuses an illegal transition with
    /// `ILLEGAL_TRANSITION` (and changes nothing).
    pub fn transition(&self, to: ServiceStatus, reason: Option<&str>) -> Result<Transition> {
        let _gate = self.gate.lock().unpoisoned();
        let from = self.get();
        if !from.can_become(to) {
            return Err(Error::rejected(
                "ILLEGAL_TRANSITION",
                format!("a service cannot go from {from} to {to}"),
            ));
        }
        let transition = Transition {
            from,
            to,
            at: Utc::now(),
            reason: reason.map(str::to_owned),
        };
        self.current.send_replace(to);
        // No subscriber is not an error.
        let _ = self.transitions.send(transition.clone());
        match to {
            ServiceStatus::Error => {
                tracing::error!(%from, reason = reason.unwrap_or(""), "service status: error");
            }
            _ => tracing::info!(%from, %to, "service status"),
        }
        metrics::gauge!("keel_service_status").set(match to {
            ServiceStatus::Stopped => 0.0,
            ServiceStatus::Starting => 1.0,
            ServiceStatus::Running => 2.0,
            ServiceStatus::Stopping => 3.0,
            ServiceStatus::Error => 4.0,
        });
        Ok(transition)
    }

    /// The latest status, as a watch channel.
    pub fn watch(&self) -> watch::Receiver<ServiceStatus> {
        self.current.subscribe()
    }

    /// Every transition from now on, in order (a subscriber more than 256
    /// transitions behind loses the oldest and is told so by the channel).
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.transitions.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceStatus::{self, *};

    #[test]
    fn every_transition_legal_and_illegal() {
        let all = [Stopped, Starting, Running, Stopping, Error];
        let legal = [
            (Stopped, Starting),
            (Starting, Running),
            (Running, Stopping),
            (Stopping, Stopped),
            (Error, Starting),
            (Stopped, Error),
            (Starting, Error),
            (Running, Error),
            (Stopping, Error),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[tokio::test]
    async fn observers_see_every_transition_in_order_and_illegal_ones_change_nothing() {
        let status = super::StatusTracker::new();
        let mut seen = status.subscribe();
        let path = [
            Starting, Running, Stopping, Stopped, Starting, Error, Starting, Running,
        ];
        for to in path {
            status.transition(to, None).unwrap();
        }
        let err = status.transition(Stopped, None).unwrap_err();
        assert_eq!(err.code(), "ILLEGAL_TRANSITION");
        assert_eq!(
            err.to_string(),
            "a service cannot go from running to stopped"
        );
        assert_eq!(status.get(), Running);
        let mut got: Vec<(ServiceStatus, ServiceStatus)> = Vec::new();
        while let Ok(t) = seen.try_recv() {
            got.push((t.from, t.to));
        }
        let mut want = Vec::new();
        let mut from = Stopped;
        for to in path {
            want.push((from, to));
            from = to;
        }
        assert_eq!(got, want);
    }
}
