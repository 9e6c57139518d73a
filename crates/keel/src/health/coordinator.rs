//! Runs the checks in the background and keeps the latest snapshot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ServiceStatus;
use super::{CheckPolicy, CheckState, DynHealthCheck, HealthCheck, HealthStatus, Observation};
use crate::sync::Unpoison as _;
use crate::{Error, Result};

struct Entry {
    name: String,
    critical: bool,
    policy: CheckPolicy,
    check: Arc<dyn DynHealthCheck>,
    state: Mutex<CheckState>,
}

struct Inner {
    service: String,
    version: String,
    started: Instant,
    started_at: DateTime<Utc>,
    period: Duration,
    entries: RwLock<Vec<Arc<Entry>>>,
    runtime: Mutex<Option<watch::Receiver<ServiceStatus>>>,
    /// Whether the attached runtime has finished starting once.
    started_once: AtomicBool,
    draining: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Runs every registered check concurrently, every `period`, in the
/// background, and keeps each check's status and history. Cloning is cheap.
///
/// ```no_run
/// # async fn demo(keel: keel::Keel) -> keel::Result<()> {
/// use keel::health::{CheckPolicy, DatabaseCheck, HealthCoordinator, VolumeCheck};
/// use std::time::Duration;
///
/// let health = HealthCoordinator::new("shop", "1.4.2", Duration::from_secs(10));
/// health.register(DatabaseCheck::new(keel.clone()), CheckPolicy::default())?;
/// health.register(VolumeCheck::new("/var/lib/shop", 10.0, 2.0), CheckPolicy::default())?;
/// health.start();
/// let report = health.report(); // the latest snapshot; never runs a check
/// println!("{}", serde_json::to_string_pretty(&report).unwrap());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HealthCoordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCoordinator")
            .field("service", &self.inner.service)
            .field("period", &self.inner.period)
            .field("checks", &self.check_names())
            .finish_non_exhaustive()
    }
}

impl HealthCoordinator {
    /// A coordinator for `service` at `version`, running its checks every `period`.
    pub fn new(service: impl Into<String>, version: impl Into<String>, period: Duration) -> Self {
        HealthCoordinator {
            inner: Arc::new(Inner {
                service: service.into(),
                version: version.into(),
                started: Instant::now(),
                started_at: Utc::now(),
                period: period.max(Duration::from_millis(10)),
                entries: RwLock::new(Vec::new()),
                runtime: Mutex::new(None),
                started_once: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                task: Mutex::new(None),
            }),
        }
    }

    /// Adds a check. Names are unique.
    pub fn register<C: HealthCheck>(&self, check: C, policy: CheckPolicy) -> Result<()> {
        self.register_dyn(Arc::new(check), policy)
    }

    pub(crate) fn register_dyn(
        &self,
        check: Arc<dyn DynHealthCheck>,
        policy: CheckPolicy,
    ) -> Result<()> {
        let mut entries = self.inner.entries.write().unpoisoned();
        let name = check.name().to_owned();
        if entries.iter().any(|e| e.name == name) {
            return Err(Error::invalid_argument(
                "health_check",
                format!("a health check named {name:?} already exists"),
            ));
        }
        entries.push(Arc::new(Entry {
            critical: policy.critical.unwrap_or_else(|| check.critical()),
            name,
            policy,
            check,
            state: Mutex::new(CheckState::new()),
        }));
        Ok(())
    }

    /// The names of the registered checks, in registration order.
    pub fn check_names(&self) -> Vec<String> {
        self.entries().iter().map(|e| e.name.clone()).collect()
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.inner.entries.read().unpoisoned().clone()
    }

    /// Runs every check once, concurrently, each under its timeout, and
    /// records the results (each as soon as it is known). Returns when all
    /// are recorded.
    pub async fn run_once(&self) {
        let mut runs = tokio::task::JoinSet::new();
        for entry in self.entries() {
            runs.spawn(async move {
                let at = Utc::now();
                let started = Instant::now();
                let observation =
                    match tokio::time::timeout(entry.policy.timeout, entry.check.check()).await {
                        Ok(observation) => observation,
                        Err(_) => Observation::unhealthy(format!(
                            "timed out after {} ms",
                            entry.policy.timeout.as_millis()
                        )),
                    };
                let took = started.elapsed();
                let status = {
                    let mut state = entry.state.lock().unpoisoned();
                    state.record(observation, at, took, &entry.policy);
                    state.status()
                };
                metrics::gauge!("keel_health_check_status", "check" => entry.name.clone())
                    .set(status.gauge());
                metrics::histogram!("keel_health_check_duration_seconds", "check" => entry.name.clone())
                    .record(took.as_secs_f64());
                if status != HealthStatus::Healthy {
                    tracing::warn!(check = %entry.name, status = status.as_str(), "health check not healthy");
                }
            });
        }
        while let Some(joined) = runs.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "a health check panicked");
            }
        }
    }

    /// Starts the background loop: a first round at once, then one every
    /// period. Calling it again does nothing.
    pub fn start(&self) {
        self.start_after(Duration::ZERO);
    }

    /// Starts the background loop with its first round after `delay`.
    pub(crate) fn start_after(&self, delay: Duration) {
        let mut task = self.inner.task.lock().unpoisoned();
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let this = self.clone();
        *task = Some(tokio::spawn(async move {
            let first = tokio::time::Instant::now() + delay;
            let mut tick = tokio::time::interval_at(first, this.inner.period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.run_once().await;
            }
        }));
    }

    /// Stops the background loop.
    pub fn stop(&self) {
        if let Some(task) = self.inner.task.lock().unpoisoned().take() {
            task.abort();
        }
    }

    /// The overall status: Unhealthy if a critical check is Unhealthy,
    /// Degraded if any check is not Healthy, else Healthy.
    pub fn status(&self) -> HealthStatus {
        let mut overall = HealthStatus::Healthy;
        for entry in self.entries() {
            let status = entry.state.lock().unpoisoned().status();
            overall = overall.max(match (status, entry.critical) {
                (HealthStatus::Unhealthy, false) => HealthStatus::Degraded,
                (status, _) => status,
            });
        }
        overall
    }

    /// Each check's status now, by name (the latest snapshot).
    pub fn check_statuses(&self) -> Vec<(String, HealthStatus)> {
        self.entries()
            .iter()
            .map(|entry| (entry.name.clone(), entry.state.lock().unpoisoned().status()))
            .collect()
    }

    /// The startup probe: whether the service has finished starting (its
    /// runtime reached Running once, and ran its first round of checks);
    /// true for good after that, whatever follows. Orchestrators check
    /// liveness only after it, so a slow start is not taken for a hang. A
    /// coordinator without a runtime is started.
    pub fn is_started(&self) -> bool {
        self.inner.started_once.load(Ordering::SeqCst) || self.runtime_status().is_none()
    }

    pub(crate) fn mark_started(&self) {
        self.inner.started_once.store(true, Ordering::SeqCst);
    }

    /// Liveness: the process works. It depends on nothing external: only a
    /// runtime that reached its `Error` state makes it false.
    pub fn is_live(&self) -> bool {
        self.runtime_status() != Some(ServiceStatus::Error)
    }

    /// Readiness: the runtime (if one is attached) is Running and not
    /// draining, and no critical check is Unhealthy.
    pub fn is_ready(&self) -> bool {
        let running = self
            .runtime_status()
            .is_none_or(|s| s == ServiceStatus::Running);
        running
            && !self.inner.draining.load(Ordering::SeqCst)
            && self.status() != HealthStatus::Unhealthy
    }

    fn runtime_status(&self) -> Option<ServiceStatus> {
        self.inner
            .runtime
            .lock()
            .unpoisoned()
            .as_ref()
            .map(|rx| *rx.borrow())
    }

    pub(crate) fn attach_runtime(&self, status: watch::Receiver<ServiceStatus>) {
        *self.inner.runtime.lock().unpoisoned() = Some(status);
    }

    pub(crate) fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::SeqCst);
    }

    /// The latest snapshot, as the `/health` report.
    pub fn report(&self) -> HealthReport {
        let checks = self
            .entries()
            .iter()
            .map(|entry| {
                let state = entry.state.lock().unpoisoned();
                let last = state.last();
                CheckReport {
                    name: entry.name.clone(),
                    status: state.status(),
                    critical: entry.critical,
                    observed_value: last.and_then(|o| o.value),
                    unit: last.and_then(|o| o.unit),
                    duration_ms: state.last_duration().map(|d| d.as_secs_f64() * 1000.0),
                    consecutive_failures: state.consecutive_failures(),
                    last_error: state.last_error().map(str::to_owned),
                    last_success: state.last_success(),
                    history: state.history().cloned().collect(),
                }
            })
            .collect();
        HealthReport {
            status: self.status(),
            service: self.inner.service.clone(),
            version: self.inner.version.clone(),
            started_at: self.inner.started_at,
            uptime_seconds: self.inner.started.elapsed().as_secs_f64(),
            runtime: self.runtime_status(),
            live: self.is_live(),
            ready: self.is_ready(),
            checks: Checks(checks),
        }
    }
}

/// The health report: what `/health` answers.
#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    /// The overall status.
    pub status: HealthStatus,
    /// The service's name.
    pub service: String,
    /// Its version.
    pub version: String,
    /// When the coordinator was made.
    pub started_at: DateTime<Utc>,
    /// Seconds since then.
    pub uptime_seconds: f64,
    /// The runtime's status, when a runtime owns the coordinator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ServiceStatus>,
    /// Liveness.
    pub live: bool,
    /// Readiness.
    pub ready: bool,
    /// Every check, in registration order, keyed by name.
    pub checks: Checks,
}

/// The checks of a report: a JSON object keyed by check name.
#[derive(Clone, Debug)]
pub struct Checks(pub Vec<CheckReport>);

impl Serialize for Checks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for check in &self.0 {
            map.serialize_entry(&check.name, check)?;
        }
        map.end()
    }
}

impl Checks {
    /// The check named `name`.
    pub fn get(&self, name: &str) -> Option<&CheckReport> {
        self.0.iter().find(|c| c.name == name)
    }
}

/// One check in the report.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// Its name (the key in the report).
    #[serde(skip)]
    pub name: String,
    /// Its status after the thresholds.
    pub status: HealthStatus,
    /// Whether it can make the service Unhealthy.
    pub critical: bool,
    /// The value the last run measured.
    pub observed_value: Option<f64>,
    /// Its unit.
    pub unit: Option<&'static str>,
    /// How long the last run took.
    pub duration_ms: Option<f64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// The last failure's or warning's message (credentials masked).
    pub last_error: Option<String>,
    /// When it last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// The last runs, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// One run of a check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// What that run observed.
    pub status: HealthStatus,
    /// How long it took.
    pub duration_ms: f64,
    /// Its message, if it was not healthy.
    pub error: Option<String>,
}
