//! One check's status over time: thresholds and history.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CheckPolicy, HealthStatus, HistoryEntry, Observation};

/// A check's status, built from its observations one at a time. The clock
/// is whatever time the caller passes, so the rules can be exercised step
/// by step.
///
/// ```
/// use chrono::Utc;
/// use keel::health::{CheckPolicy, CheckState, HealthStatus, Observation};
/// use std::time::Duration;
///
/// let policy = CheckPolicy::default().thresholds(3, 2);
/// let mut state = CheckState::new();
/// let ms = Duration::from_millis(1);
/// state.record(Observation::unhealthy("refused"), Utc::now(), ms, &policy);
/// assert_eq!(state.status(), HealthStatus::Degraded); // first failure
/// state.record(Observation::unhealthy("refused"), Utc::now(), ms, &policy);
/// state.record(Observation::unhealthy("refused"), Utc::now(), ms, &policy);
/// assert_eq!(state.status(), HealthStatus::Unhealthy); // third in a row
/// state.record(Observation::healthy(), Utc::now(), ms, &policy);
/// assert_eq!(state.status(), HealthStatus::Unhealthy); // one success is not enough
/// state.record(Observation::healthy(), Utc::now(), ms, &policy);
/// assert_eq!(state.status(), HealthStatus::Healthy);
/// ```
#[derive(Clone, Debug)]
pub struct CheckState {
    status: HealthStatus,
    consecutive_failures: u32,
    consecutive_successes: u32,
    last: Option<Observation>,
    last_duration: Option<Duration>,
    last_error: Option<String>,
    last_success: Option<DateTime<Utc>>,
    history: VecDeque<HistoryEntry>,
}

impl Default for CheckState {
    fn default() -> Self {
        CheckState::new()
    }
}

impl CheckState {
    /// A check not run yet: Healthy, no history.
    pub fn new() -> Self {
        CheckState {
            status: HealthStatus::Healthy,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last: None,
            last_duration: None,
            last_error: None,
            last_success: None,
            history: VecDeque::new(),
        }
    }

    /// Takes one observation made at `at` that took `took`.
    pub fn record(
        &mut self,
        observation: Observation,
        at: DateTime<Utc>,
        took: Duration,
        policy: &CheckPolicy,
    ) {
        let message = observation.message.as_deref().map(super::scrub);
        match observation.status {
            HealthStatus::Healthy => {
                self.consecutive_failures = 0;
                self.consecutive_successes += 1;
                self.last_success = Some(at);
                if self.status != HealthStatus::Healthy
                    && self.consecutive_successes >= policy.recovery_threshold.max(1)
                {
                    self.status = HealthStatus::Healthy;
                }
            }
            HealthStatus::Degraded => {
                self.consecutive_failures = 0;
                self.consecutive_successes = 0;
                self.last_error.clone_from(&message);
                self.status = HealthStatus::Degraded;
            }
            HealthStatus::Unhealthy => {
                self.consecutive_successes = 0;
                self.consecutive_failures += 1;
                self.last_error.clone_from(&message);
                self.status = if self.status == HealthStatus::Unhealthy
                    || self.consecutive_failures >= policy.failure_threshold.max(1)
                {
                    HealthStatus::Unhealthy
                } else {
                    HealthStatus::Degraded
                };
            }
        }
        self.history.push_back(HistoryEntry {
            at,
            status: observation.status,
            duration_ms: took.as_secs_f64() * 1000.0,
            error: message,
        });
        while self.history.len() > policy.history {
            self.history.pop_front();
        }
        self.last = Some(observation);
        self.last_duration = Some(took);
    }

    /// The check's status after the thresholds.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// Failures in a row, up to now.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The last observation, if the check ran.
    pub fn last(&self) -> Option<&Observation> {
        self.last.as_ref()
    }

    /// How long the last run took.
    pub fn last_duration(&self) -> Option<Duration> {
        self.last_duration
    }

    /// The last failure's or warning's message.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the check last succeeded.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.last_success
    }

    /// The last runs, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut CheckState, ok: bool, policy: &CheckPolicy, t: i64) -> HealthStatus {
        let obs = if ok {
            Observation::healthy()
        } else {
            Observation::unhealthy("down")
        };
        let at = DateTime::from_timestamp(t, 0).unwrap();
        state.record(obs, at, Duration::from_millis(3), policy);
        state.status()
    }

    #[test]
    fn degrade_then_unhealthy_then_recover_without_flapping() {
        let policy = CheckPolicy::default().thresholds(3, 2).history(4);
        let mut s = CheckState::new();
        use HealthStatus::*;
        let steps = [
            (false, Degraded),
            (true, Degraded), // one success after a failure: still Degraded
            (true, Healthy),  // two: Healthy
            (false, Degraded),
            (false, Degraded),
            (false, Unhealthy), // third failure in a row
            (true, Unhealthy),
            (false, Unhealthy), // a failure between successes does not improve it
            (true, Unhealthy),
            (true, Healthy),
        ];
        for (t, (ok, want)) in steps.into_iter().enumerate() {
            assert_eq!(run(&mut s, ok, &policy, t as i64), want, "step {t}");
        }
        assert_eq!(s.history().count(), 4, "bounded history");
        assert_eq!(s.consecutive_failures(), 0);
        assert_eq!(s.last_success(), DateTime::from_timestamp(9, 0));
        assert_eq!(s.last_error(), Some("down"));
    }

    #[test]
    fn a_degraded_observation_degrades_at_once_and_scrubs_secrets() {
        let policy = CheckPolicy::default();
        let mut s = CheckState::new();
        s.record(
            Observation::degraded("low on space at redis://u:pw@host"),
            Utc::now(),
            Duration::ZERO,
            &policy,
        );
        assert_eq!(s.status(), HealthStatus::Degraded);
        assert_eq!(s.last_error(), Some("low on space at redis://***@host"));
    }
}
