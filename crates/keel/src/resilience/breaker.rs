//! A circuit breaker with resilience4j's count-based semantics.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::health::{HealthCheck, Observation};
use crate::sync::Unpoison as _;
use crate::{Error, Result};

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass; outcomes are recorded in the sliding window.
    Closed,
    /// Calls are refused at once (`UNAVAILABLE`) until the wait is over.
    Open,
    /// A limited number of probe calls pass; their outcome closes or reopens it.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `keel_circuit_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// The settings of a [`CircuitBreaker`], named and defaulted as in resilience4j.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// How many of the last calls the closed breaker judges (default 20).
    pub window_size: usize,
    /// Calls needed in the window before any judgement (default 10).
    pub minimum_calls: usize,
    /// Failure rate, in percent, at or above which the breaker opens (default 50).
    pub failure_rate_threshold: f64,
    /// A call slower than this is slow (default 1 s).
    pub slow_call_duration: Duration,
    /// Slow-call rate, in percent, at or above which the breaker opens (default 100).
    pub slow_call_rate_threshold: f64,
    /// How long the breaker stays open before it lets probes through (default 10 s).
    pub wait_in_open: Duration,
    /// Probe calls allowed in half-open; their outcome decides (default 3).
    pub half_open_calls: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window_size: 20,
            minimum_calls: 10,
            failure_rate_threshold: 50.0,
            slow_call_duration: Duration::from_secs(1),
            slow_call_rate_threshold: 100.0,
            wait_in_open: Duration::from_secs(10),
            half_open_calls: 3,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Outcome {
    failed: bool,
    slow: bool,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    window: VecDeque<Outcome>,
    opened_at: Option<Instant>,
    probes_started: usize,
    probes: Vec<Outcome>,
}

/// A circuit breaker: after too many failed (or slow) calls among the last
/// `window_size`, it opens and refuses calls at once for `wait_in_open`,
/// then lets `half_open_calls` probes through, and closes again if they
/// succeed (or reopens if they do not). The move from open to half-open
/// happens by itself once the wait is over.
///
/// Keel puts one around Redis (and the broker). Its state is exported as the
/// `keel_circuit_breaker_state{breaker}` gauge (0 closed, 1 open, 2
/// half-open), its calls as `keel_circuit_breaker_calls_total{breaker,
/// outcome}`, and [`CircuitBreaker::health_check`] reports it.
///
/// ```
/// use keel::resilience::{BreakerConfig, BreakerState, CircuitBreaker};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = CircuitBreaker::new("redis", BreakerConfig { minimum_calls: 2, window_size: 2, ..Default::default() });
/// for _ in 0..2 {
///     let _ = breaker.call(|| async { Err::<(), _>(keel::Error::aborted("down")) }).await;
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// let refused = breaker.call(|| async { Ok(()) }).await.unwrap_err();
/// assert_eq!(refused.code(), "UNAVAILABLE");
/// # }
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    name: Arc<str>,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Leave to make one call through a [`CircuitBreaker`]; report its outcome
/// with [`Permit::success`] or [`Permit::failure`]. Dropped without a
/// report (the call was cancelled), it records nothing.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    started: Instant,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    /// The call succeeded.
    pub fn success(mut self) {
        self.done = true;
        self.breaker
            .record(self.probe, false, self.started.elapsed());
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.done = true;
        self.breaker
            .record(self.probe, true, self.started.elapsed());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            let mut inner = self.breaker.lock();
            inner.probes_started = inner.probes_started.saturating_sub(1);
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the label of its metrics and health check).
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        let breaker = CircuitBreaker {
            name: Arc::from(name.into()),
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                window: VecDeque::new(),
                opened_at: None,
                probes_started: 0,
                probes: Vec::new(),
            }),
        };
        breaker.export(BreakerState::Closed);
        breaker
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (an open breaker whose wait is over is half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner);
        inner.state
    }

    /// The failure rate, in percent, of the calls in the window (`None`
    /// until `minimum_calls` calls were made).
    pub fn failure_rate(&self) -> Option<f64> {
        let inner = self.lock();
        rates(&inner.window, self.config.minimum_calls).map(|(failed, _)| failed)
    }

    /// Leave for one call, or `UNAVAILABLE` when the breaker is open (or
    /// half-open with all its probes taken).
    pub fn try_acquire(&self) -> Result<Permit<'_>> {
        let mut inner = self.lock();
        self.advance(&mut inner);
        let probe = match inner.state {
            BreakerState::Closed => false,
            BreakerState::HalfOpen if inner.probes_started < self.config.half_open_calls => {
                inner.probes_started += 1;
                true
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                drop(inner);
                self.count("rejected");
                return Err(Error::Unavailable {
                    reason: "circuit breaker open",
                    source: Some(format!("circuit breaker {} is open", self.name).into()),
                });
            }
        };
        Ok(Permit {
            breaker: self,
            started: Instant::now(),
            probe,
            done: false,
        })
    }

    /// Runs `f` through the breaker: refused at once when open; an `Err`
    /// counts as a failure, a call slower than `slow_call_duration` as slow.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let permit = self.try_acquire()?;
        match f().await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(err) => {
                permit.failure();
                Err(err)
            }
        }
    }

    /// A health check of this breaker: Healthy when closed, Degraded when
    /// half-open, Unhealthy when open; non-critical.
    pub fn health_check(self: &Arc<Self>) -> BreakerCheck {
        BreakerCheck {
            name: format!("breaker:{}", self.name),
            breaker: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unpoisoned()
    }

    /// Open -> half-open once the wait is over.
    fn advance(&self, inner: &mut Inner) {
        if inner.state == BreakerState::Open
            && inner
                .opened_at
                .is_some_and(|at| at.elapsed() >= self.config.wait_in_open)
        {
            self.transition(inner, BreakerState::HalfOpen);
        }
    }

    fn record(&self, probe: bool, failed: bool, took: Duration) {
        let outcome = Outcome {
            failed,
            slow: took >= self.config.slow_call_duration,
        };
        self.count(match (failed, outcome.slow) {
            (true, _) => "failure",
            (false, true) => "slow_success",
            (false, false) => "success",
        });
        let mut inner = self.lock();
        match (inner.state, probe) {
            (BreakerState::Closed, false) => {
                inner.window.push_back(outcome);
                while inner.window.len() > self.config.window_size {
                    inner.window.pop_front();
                }
                if self.too_bad(&inner.window, self.config.minimum_calls) {
                    self.transition(&mut inner, BreakerState::Open);
                }
            }
            (BreakerState::HalfOpen, true) => {
                inner.probes.push(outcome);
                if inner.probes.len() >= self.config.half_open_calls {
                    let next = if self.too_bad(&inner.probes, 1) {
                        BreakerState::Open
                    } else {
                        BreakerState::Closed
                    };
                    self.transition(&mut inner, next);
                }
            }
            // The outcome of a call admitted in a state that has passed since.
            _ => {}
        }
    }

    fn too_bad<'a>(&self, outcomes: impl IntoIterator<Item = &'a Outcome>, minimum: usize) -> bool {
        let outcomes: Vec<&Outcome> = outcomes.into_iter().collect();
        match rates(outcomes.iter().copied(), minimum) {
            Some((failed, slow)) => {
                failed >= self.config.failure_rate_threshold
                    || slow >= self.config.slow_call_rate_threshold
            }
            None => false,
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        let from = inner.state;
        inner.state = to;
        inner.window.clear();
        inner.probes.clear();
        inner.probes_started = 0;
        inner.opened_at = (to == BreakerState::Open).then(Instant::now);
        match to {
            BreakerState::Open => {
                tracing::warn!(breaker = %self.name, from = from.as_str(), "circuit breaker opened");
            }
            _ => {
                tracing::info!(breaker = %self.name, from = from.as_str(), to = to.as_str(), "circuit breaker changed state");
            }
        }
        metrics::counter!(
            "keel_circuit_breaker_transitions_total",
            "breaker" => self.name.to_string(),
            "to" => to.as_str()
        )
        .increment(1);
        self.export(to);
    }

    fn export(&self, state: BreakerState) {
        metrics::gauge!("keel_circuit_breaker_state", "breaker" => self.name.to_string())
            .set(state.gauge());
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(
            "keel_circuit_breaker_calls_total",
            "breaker" => self.name.to_string(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

/// (failure rate, slow rate) in percent, once there are `minimum` outcomes.
fn rates<'a>(
    outcomes: impl IntoIterator<Item = &'a Outcome>,
    minimum: usize,
) -> Option<(f64, f64)> {
    let (mut n, mut failed, mut slow) = (0usize, 0usize, 0usize);
    for o in outcomes {
        n += 1;
        failed += usize::from(o.failed);
        slow += usize::from(o.slow);
    }
    if n == 0 || n < minimum {
        return None;
    }
    let pct = |k: usize| k as f64 * 100.0 / n as f64;
    Some((pct(failed), pct(slow)))
}

/// The health check of a [`CircuitBreaker`] (see [`CircuitBreaker::health_check`]).
#[derive(Debug)]
pub struct BreakerCheck {
    name: String,
    breaker: Arc<CircuitBreaker>,
}

impl HealthCheck for BreakerCheck {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Observation {
        let observation = match self.breaker.state() {
            BreakerState::Closed => Observation::healthy(),
            BreakerState::HalfOpen => Observation::degraded("half-open: probing"),
            BreakerState::Open => Observation::unhealthy("open: calls are refused"),
        };
        match self.breaker.failure_rate() {
            Some(rate) => observation.with_value(rate, "% failed"),
            None => observation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window_size: 4,
            minimum_calls: 4,
            failure_rate_threshold: 50.0,
            slow_call_duration: Duration::from_millis(100),
            slow_call_rate_threshold: 75.0,
            wait_in_open: Duration::from_secs(5),
            half_open_calls: 2,
        }
    }

    async fn ok(b: &CircuitBreaker) -> Result<()> {
        b.call(|| async { Ok(()) }).await
    }

    async fn fail(b: &CircuitBreaker) -> Result<()> {
        b.call(|| async { Err(Error::aborted("boom")) }).await
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_rate_only_after_minimum_calls() {
        let b = CircuitBreaker::new("t", config());
        fail(&b).await.unwrap_err();
        fail(&b).await.unwrap_err();
        ok(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed, "3 calls < minimum 4");
        ok(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Open, "2 of 4 failed = 50%");
        let err = ok(&b).await.unwrap_err();
        assert_eq!(err.code(), "UNAVAILABLE");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sliding_window_forgets_old_calls() {
        let b = CircuitBreaker::new("t", config());
        fail(&b).await.unwrap_err();
        for _ in 0..3 {
            ok(&b).await.unwrap();
        }
        assert_eq!(b.state(), BreakerState::Closed, "25% failed");
        for _ in 0..4 {
            ok(&b).await.unwrap();
        }
        fail(&b).await.unwrap_err();
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "the old failure left the window"
        );
        assert_eq!(b.failure_rate(), Some(25.0));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_the_wait_then_closes_or_reopens() {
        let b = CircuitBreaker::new("t", config());
        for _ in 0..4 {
            fail(&b).await.unwrap_err();
        }
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "by itself, after the wait"
        );

        // Only `half_open_calls` probes at once.
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire().unwrap();
        assert_eq!(b.try_acquire().unwrap_err().code(), "UNAVAILABLE");
        p1.success();
        p2.failure();
        assert_eq!(b.state(), BreakerState::Open, "1 of 2 probes failed = 50%");

        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // A cancelled probe frees its slot.
        drop(b.try_acquire().unwrap());
        ok(&b).await.unwrap();
        ok(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.failure_rate(), None, "a fresh window");
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_slow_calls() {
        let b = CircuitBreaker::new("t", config());
        for _ in 0..3 {
            b.call(|| async {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok(())
            })
            .await
            .unwrap();
        }
        ok(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Open, "3 of 4 slow = 75%");
    }

    #[tokio::test(start_paused = true)]
    async fn the_health_check_follows_the_state() {
        let b = Arc::new(CircuitBreaker::new("redis", config()));
        let check = b.health_check();
        assert_eq!(check.name(), "breaker:redis");
        assert_eq!(
            check.check().await.status,
            crate::health::HealthStatus::Healthy
        );
        for _ in 0..4 {
            fail(&b).await.unwrap_err();
        }
        assert_eq!(
            check.check().await.status,
            crate::health::HealthStatus::Unhealthy
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            check.check().await.status,
            crate::health::HealthStatus::Degraded
        );
    }
}
