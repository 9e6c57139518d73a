//! The runtime: owns the components, starts them in dependency order,
//! stops them in reverse, shuts down gracefully on a signal.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, watch};

use super::component::{DatabaseComponent, DynComponent, RuntimeCheck};
use super::{BuildInfo, Component, ServiceStatus, StatusTracker, Transition};
use crate::health::{CheckPolicy, HealthCoordinator};
use crate::resilience::RetryPolicy;
use crate::sync::Unpoison as _;
use crate::{Error, Keel, Result};

/// How the runtime starts, stops and drains.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Attempts and backoff of each component's start (default 3 attempts,
    /// 100 ms to 2 s).
    pub start_retry: RetryPolicy,
    /// How long each component may take to stop (default 10 s).
    pub stop_timeout: Duration,
    /// How long a graceful shutdown waits, with readiness already false,
    /// before it stops taking work, so load balancers notice (default 2 s).
    pub drain_delay: Duration,
    /// How long it then waits for in-flight work to finish (default 10 s).
    pub drain_timeout: Duration,
    /// The health checks' period (default 10 s).
    pub health_period: Duration,
    /// Where to serve gRPC health (`grpc.health.v1`; feature `grpc-health`),
    /// or nowhere (the default).
    pub grpc_health_bind: Option<std::net::SocketAddr>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            start_retry: RetryPolicy::attempts(3)
                .min_delay(Duration::from_millis(100))
                .max_delay(Duration::from_secs(2)),
            stop_timeout: Duration::from_secs(10),
            drain_delay: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
            health_period: Duration::from_secs(10),
            grpc_health_bind: None,
        }
    }
}

impl RuntimeConfig {
    /// The defaults, overridden by `KEEL_START_ATTEMPTS`,
    /// `KEEL_STOP_TIMEOUT_MS`, `KEEL_DRAIN_DELAY_MS`, `KEEL_DRAIN_TIMEOUT_MS`,
    /// `KEEL_HEALTH_PERIOD_MS` and `KEEL_GRPC_HEALTH_BIND` (`host:port`;
    /// it needs keel's `grpc-health` cargo feature).
    pub fn from_env() -> Result<Self> {
        let mut config = RuntimeConfig::default();
        let ms = |name: &'static str| -> Result<Option<Duration>> {
            Ok(crate::env::parse::<u64>(name)?.map(Duration::from_millis))
        };
        if let Some(n) = crate::env::parse::<usize>("KEEL_START_ATTEMPTS")? {
            config.start_retry = RetryPolicy::attempts(n)
                .min_delay(Duration::from_millis(100))
                .max_delay(Duration::from_secs(2));
        }
        if let Some(d) = ms("KEEL_STOP_TIMEOUT_MS")? {
            config.stop_timeout = d;
        }
        if let Some(d) = ms("KEEL_DRAIN_DELAY_MS")? {
            config.drain_delay = d;
        }
        if let Some(d) = ms("KEEL_DRAIN_TIMEOUT_MS")? {
            config.drain_timeout = d;
        }
        if let Some(d) = ms("KEEL_HEALTH_PERIOD_MS")? {
            config.health_period = d;
        }
        if let Some(bind) = crate::env::parse::<std::net::SocketAddr>("KEEL_GRPC_HEALTH_BIND")? {
            if !cfg!(feature = "grpc-health") {
                return Err(Error::invalid_argument(
                    "configuration",
                    "KEEL_GRPC_HEALTH_BIND needs keel's `grpc-health` cargo feature, which this build does not have",
                ));
            }
            config.grpc_health_bind = Some(bind);
        }
        Ok(config)
    }
}

struct Node {
    name: String,
    depends_on: Vec<String>,
    component: Arc<dyn DynComponent>,
}

/// Builds a [`Runtime`]: its components and their dependencies.
///
/// ```no_run
/// # async fn demo(keel: keel::Keel) -> keel::Result<()> {
/// use keel::lifecycle::{Component, Runtime};
///
/// struct Mailer;
/// impl Component for Mailer {
///     fn name(&self) -> &str { "mailer" }
///     async fn start(&self) -> keel::Result<()> { Ok(()) }
/// }
///
/// let runtime = Runtime::builder("shop", env!("CARGO_PKG_VERSION"))
///     .keel(&keel)                               // the "database" component
///     .component(Mailer, &["database"])
///     .build()?;
/// runtime.start().await.map_err(keel::lifecycle::StartupError::into_error)?;
/// runtime.run_until_signal().await; // SIGTERM / SIGINT: graceful shutdown
/// # Ok(()) }
/// ```
pub struct RuntimeBuilder {
    name: String,
    version: String,
    revision: Option<String>,
    config: RuntimeConfig,
    nodes: Vec<Node>,
    keel: Option<Keel>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("name", &self.name)
            .field(
                "components",
                &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// The source revision the service was built from (a git commit), for
    /// `/info` and the `keel_build_info` metric.
    #[must_use]
    pub fn revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = Some(revision.into());
        self
    }

    /// Sets the configuration.
    #[must_use]
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds the database pool of `keel` as the component `database`,
    /// registers the health checks of its cache's Redis tier (when it has
    /// one), and waits for its event subscribers during a graceful shutdown.
    #[must_use]
    pub fn keel(mut self, keel: &Keel) -> Self {
        self.keel = Some(keel.clone());
        self.component(DatabaseComponent::new(keel.clone()), &[])
    }

    /// Adds `component`, started after the components it `depends_on` and
    /// stopped before them.
    #[must_use]
    pub fn component(mut self, component: impl Component, depends_on: &[&str]) -> Self {
        self.nodes.push(Node {
            name: Component::name(&component).to_owned(),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            component: Arc::new(component),
        });
        self
    }

    /// Checks the graph (unique names, known dependencies, no cycle) and
    /// builds the runtime; its components' health checks and the runtime's
    /// own are registered on its coordinator.
    #[cfg_attr(
        not(feature = "grpc-health"),
        allow(unused_mut, reason = "only gRPC health adds a component here")
    )]
    pub fn build(mut self) -> Result<Runtime> {
        let status = StatusTracker::new();
        let health = HealthCoordinator::new(&self.name, &self.version, self.config.health_period);
        #[cfg(feature = "grpc-health")]
        let grpc_address = match self.config.grpc_health_bind {
            Some(bind) => {
                let components = self.nodes.iter().map(|n| n.name.clone()).collect();
                let grpc = crate::health::GrpcHealth::new(
                    bind,
                    health.clone(),
                    status.watch(),
                    components,
                );
                let address = grpc.address();
                // No dependency: it starts first and stops last.
                self = self.component(grpc, &[]);
                Some(address)
            }
            None => None,
        };
        let levels = levels(&self.nodes)?;
        health.attach_runtime(status.watch());
        health.register(RuntimeCheck::new(status.watch()), CheckPolicy::default())?;
        for node in &self.nodes {
            node.component.health_checks(&health)?;
        }
        if let Some(keel) = &self.keel {
            keel.cache().health_checks(&health)?;
        }
        let mut info = BuildInfo::new(&self.name, &self.version);
        if let Some(revision) = self.revision {
            info = info.revision(revision);
        }
        Ok(Runtime {
            inner: Arc::new(Inner {
                info,
                #[cfg(feature = "grpc-health")]
                grpc_address,
                name: self.name,
                status,
                health,
                nodes: self.nodes,
                levels,
                config: self.config,
                started: Mutex::new(Vec::new()),
                starts: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                drained: Notify::new(),
                keel: self.keel,
            }),
        })
    }
}

/// The components in start order: each level depends only on earlier ones.
fn levels(nodes: &[Node]) -> Result<Vec<Vec<usize>>> {
    let bad = |m: String| Err(Error::invalid_argument("runtime", m));
    let mut index = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if index.insert(node.name.as_str(), i).is_some() {
            return bad(format!("two components are named {:?}", node.name));
        }
    }
    for node in nodes {
        for dep in &node.depends_on {
            if !index.contains_key(dep.as_str()) {
                return bad(format!(
                    "component {:?} depends on {dep:?}, which is not a component",
                    node.name
                ));
            }
        }
    }
    let mut placed: HashSet<usize> = HashSet::new();
    let mut levels = Vec::new();
    while placed.len() < nodes.len() {
        let level: Vec<usize> = (0..nodes.len())
            .filter(|i| !placed.contains(i))
            .filter(|&i| {
                nodes[i]
                    .depends_on
                    .iter()
                    .all(|d| placed.contains(&index[d.as_str()]))
            })
            .collect();
        if level.is_empty() {
            let mut stuck: Vec<&str> = (0..nodes.len())
                .filter(|i| !placed.contains(i))
                .map(|i| nodes[i].name.as_str())
                .collect();
            stuck.sort_unstable();
            return bad(format!(
                "the dependencies of components {} form a cycle",
                stuck.join(", ")
            ));
        }
        placed.extend(level.iter().copied());
        levels.push(level);
    }
    Ok(levels)
}

/// A component that would not start.
#[derive(Debug, thiserror::Error)]
#[error("component {component} failed to start after {attempts} attempts: {error}")]
pub struct StartupError {
    /// Which component.
    pub component: String,
    /// How many times it was tried.
    pub attempts: usize,
    /// Its last error.
    #[source]
    pub error: Error,
}

impl StartupError {
    /// As a Keel error: `UNAVAILABLE`, naming the component in its source.
    pub fn into_error(self) -> Error {
        Error::Unavailable {
            reason: "a component failed to start",
            source: Some(Box::new(self)),
        }
    }
}

/// How one component started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartRecord {
    /// Which component.
    pub component: String,
    /// When its start began, from the runtime's start.
    pub began: Duration,
    /// When it ended.
    pub ended: Duration,
    /// Attempts it took.
    pub attempts: usize,
}

/// How one component stopped.
#[derive(Debug)]
pub struct StopRecord {
    /// Which component.
    pub component: String,
    /// `Ok`, its error, or `DEADLINE_EXCEEDED` when it ran past the stop timeout.
    pub outcome: Result<()>,
    /// How long it took.
    pub took: Duration,
}

struct Inner {
    info: BuildInfo,
    /// Where gRPC health listens, once started.
    #[cfg(feature = "grpc-health")]
    grpc_address: Option<Arc<Mutex<Option<std::net::SocketAddr>>>>,
    name: String,
    status: StatusTracker,
    health: HealthCoordinator,
    nodes: Vec<Node>,
    levels: Vec<Vec<usize>>,
    config: RuntimeConfig,
    /// Started components, in the order their starts ended.
    started: Mutex<Vec<usize>>,
    starts: Mutex<Vec<StartRecord>>,
    in_flight: AtomicUsize,
    drained: Notify,
    keel: Option<Keel>,
}

/// The service runtime: a status, components in dependency order, a
/// health coordinator, graceful shutdown. Cloning is cheap.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("name", &self.inner.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Counts one piece of in-flight work while it lives (see [`Runtime::work`]).
#[derive(Debug)]
pub struct WorkGuard {
    runtime: Runtime,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        if self.runtime.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.runtime.inner.drained.notify_waiters();
        }
    }
}

impl Runtime {
    /// A builder for the service `name` at `version`.
    pub fn builder(name: impl Into<String>, version: impl Into<String>) -> RuntimeBuilder {
        RuntimeBuilder {
            name: name.into(),
            version: version.into(),
            revision: None,
            config: RuntimeConfig::default(),
            nodes: Vec::new(),
            keel: None,
        }
    }

    /// Where gRPC health listens (`RuntimeConfig::grpc_health_bind`), once
    /// started: with port 0, the port the system chose.
    #[cfg(feature = "grpc-health")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc-health")))]
    pub fn grpc_health_address(&self) -> Option<std::net::SocketAddr> {
        self.inner
            .grpc_address
            .as_ref()
            .and_then(|a| *a.lock().unpoisoned())
    }

    /// What this service is: name, version, revision, Keel's version and
    /// features (`/info`).
    pub fn build_info(&self) -> &BuildInfo {
        &self.inner.info
    }

    /// The current status.
    pub fn status(&self) -> ServiceStatus {
        self.inner.status.get()
    }

    /// The latest status, as a watch channel.
    pub fn watch(&self) -> watch::Receiver<ServiceStatus> {
        self.inner.status.watch()
    }

    /// Every status transition from now on, in order.
    pub fn transitions(&self) -> broadcast::Receiver<Transition> {
        self.inner.status.subscribe()
    }

    /// The health coordinator.
    pub fn health(&self) -> &HealthCoordinator {
        &self.inner.health
    }

    /// The components in start order, level by level (components of one
    /// level start in parallel).
    pub fn start_order(&self) -> Vec<Vec<String>> {
        self.inner
            .levels
            .iter()
            .map(|level| {
                level
                    .iter()
                    .map(|&i| self.inner.nodes[i].name.clone())
                    .collect()
            })
            .collect()
    }

    /// How each component started, in the last start.
    pub fn start_records(&self) -> Vec<StartRecord> {
        self.inner.starts.lock().unpoisoned().clone()
    }

    /// Marks one piece of in-flight work (a request) until the guard drops;
    /// a graceful shutdown waits for them.
    pub fn work(&self) -> WorkGuard {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        WorkGuard {
            runtime: self.clone(),
        }
    }

    /// In-flight work right now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Starts the components level by level (a level's components in
    /// parallel), each retried with backoff; then the health checks;
    /// status `Running`. If a component does not start, the ones already
    /// started are stopped in reverse order, the status becomes `Error`, and
    /// the error names the component.
    pub async fn start(&self) -> std::result::Result<(), StartupError> {
        let inner = &self.inner;
        inner
            .status
            .transition(ServiceStatus::Starting, None)
            .map_err(|error| StartupError {
                component: inner.name.clone(),
                attempts: 0,
                error,
            })?;
        inner.starts.lock().unpoisoned().clear();
        let t0 = Instant::now();
        for level in &inner.levels {
            let mut starts = tokio::task::JoinSet::new();
            for &i in level {
                let runtime = self.clone();
                starts.spawn(async move {
                    let (attempts, outcome) = runtime.start_one(i, t0).await;
                    (i, attempts, outcome)
                });
            }
            let mut failure = None;
            while let Some(joined) = starts.join_next().await {
                let (i, attempts, outcome) = match joined {
                    Ok(done) => done,
                    Err(err) => {
                        failure.get_or_insert(StartupError {
                            component: "(unknown)".into(),
                            attempts: 0,
                            error: Error::internal(format!("a component's start panicked: {err}")),
                        });
                        continue;
                    }
                };
                match outcome {
                    Ok(()) => inner.started.lock().unpoisoned().push(i),
                    Err(error) => {
                        failure.get_or_insert(StartupError {
                            component: inner.nodes[i].name.clone(),
                            attempts,
                            error,
                        });
                    }
                }
            }
            if let Some(failure) = failure {
                tracing::error!(component = %failure.component, attempts = failure.attempts, error = %failure.error, "start failed; stopping what started");
                self.stop_components().await;
                let _ = inner
                    .status
                    .transition(ServiceStatus::Error, Some(&failure.to_string()));
                return Err(failure);
            }
        }
        inner
            .status
            .transition(ServiceStatus::Running, None)
            .map_err(|error| StartupError {
                component: inner.name.clone(),
                attempts: 0,
                error,
            })?;
        inner.health.set_draining(false);
        inner.info.record_metric();
        // The first round of checks runs before `start` returns, so probes
        // never see a report without results; then the startup probe says
        // yes, for good.
        inner.health.run_once().await;
        inner.health.mark_started();
        inner.health.start_after(inner.config.health_period);
        Ok(())
    }

    async fn start_one(&self, i: usize, t0: Instant) -> (usize, Result<()>) {
        let node = &self.inner.nodes[i];
        let began = t0.elapsed();
        let mut delays = self.inner.config.start_retry.delays();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match node.component.start().await {
                Ok(()) => break Ok(()),
                Err(err) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(component = %node.name, attempt = attempts, error = %err, ?delay, "component failed to start; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => break Err(err),
                },
            }
        };
        if outcome.is_ok() {
            tracing::info!(component = %node.name, attempts, "component started");
        }
        self.inner.starts.lock().unpoisoned().push(StartRecord {
            component: node.name.clone(),
            began,
            ended: t0.elapsed(),
            attempts,
        });
        (attempts, outcome)
    }

    /// Stops the health checks, then the started components in reverse
    /// dependency order (a level's components in parallel), each within
    /// the stop timeout; status `Stopped` (or stays `Error`).
    pub async fn stop(&self) -> Vec<StopRecord> {
        let status = self.status();
        if status == ServiceStatus::Running {
            let _ = self.inner.status.transition(ServiceStatus::Stopping, None);
        }
        let records = self.stop_components().await;
        if self.status() == ServiceStatus::Stopping {
            let _ = self.inner.status.transition(ServiceStatus::Stopped, None);
        }
        // The last spans (of the drain and the stops) go to the collector.
        crate::telemetry::flush_traces();
        records
    }

    async fn stop_components(&self) -> Vec<StopRecord> {
        let inner = &self.inner;
        inner.health.stop();
        let started: HashSet<usize> = std::mem::take(&mut *inner.started.lock().unpoisoned())
            .into_iter()
            .collect();
        let mut records = Vec::new();
        for level in inner.levels.iter().rev() {
            let mut stops = tokio::task::JoinSet::new();
            for &i in level.iter().filter(|i| started.contains(i)) {
                let runtime = self.clone();
                stops.spawn(async move {
                    let node = &runtime.inner.nodes[i];
                    let begun = Instant::now();
                    let outcome =
                        tokio::time::timeout(runtime.inner.config.stop_timeout, node.component.stop())
                            .await
                            .unwrap_or(Err(Error::DeadlineExceeded));
                    match &outcome {
                        Ok(()) => tracing::info!(component = %node.name, "component stopped"),
                        Err(err) => {
                            tracing::warn!(component = %node.name, error = %err, "component did not stop cleanly");
                        }
                    }
                    StopRecord {
                        component: node.name.clone(),
                        outcome,
                        took: begun.elapsed(),
                    }
                });
            }
            while let Some(joined) = stops.join_next().await {
                if let Ok(record) = joined {
                    records.push(record);
                }
            }
        }
        records
    }

    /// A graceful shutdown: readiness turns false at once, the drain delay
    /// passes (load balancers stop sending work), in-flight work and event
    /// deliveries finish (up to the drain timeout), then the components
    /// stop in reverse order.
    pub async fn shutdown(&self) -> Vec<StopRecord> {
        self.begin_drain();
        tokio::time::sleep(self.inner.config.drain_delay).await;
        self.drain().await;
        self.stop().await
    }

    /// The first step of a graceful shutdown: readiness turns false, so
    /// that load balancers stop sending traffic. [`shutdown`](Self::shutdown)
    /// takes it; take it yourself when the HTTP server must stop between it
    /// and [`stop`](Self::stop) (see `keel_axum::serve`).
    pub fn begin_drain(&self) {
        self.inner.health.set_draining(true);
        tracing::info!(
            drain_delay = ?self.inner.config.drain_delay,
            in_flight = self.in_flight(),
            "graceful shutdown: not ready any more"
        );
    }

    /// Waits, at most the configured drain timeout, until no work is in
    /// flight ([`work`](Self::work) guards) and every event was delivered.
    pub async fn drain(&self) {
        let inner = &self.inner;
        let drained = async {
            loop {
                let notified = inner.drained.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.in_flight() == 0 {
                    break;
                }
                notified.await;
            }
            if let Some(keel) = &inner.keel {
                keel.events().idle().await;
            }
        };
        if tokio::time::timeout(inner.config.drain_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.in_flight(),
                "drain timeout: stopping with work in flight"
            );
        }
    }

    /// Waits for SIGTERM or SIGINT (Ctrl-C), then shuts down gracefully.
    pub async fn run_until_signal(&self) -> Vec<StopRecord> {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        self.shutdown().await
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
