//! gRPC health (`grpc.health.v1.Health`) for service meshes and
//! Kubernetes' `grpc` probes: see [`GrpcHealth`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::{HealthCoordinator, HealthStatus};
use crate::lifecycle::{Component, ServiceStatus};
use crate::sync::Unpoison as _;
use crate::{Error, Result};

/// How often the statuses are looked at.
const POLL: Duration = Duration::from_millis(200);

/// The runtime component that serves gRPC health (`grpc.health.v1.Health`,
/// `Check` and `Watch`) on an address of its own; added by
/// [`RuntimeBuilder`](crate::lifecycle::RuntimeBuilder) when
/// [`RuntimeConfig::grpc_health_bind`](crate::lifecycle::RuntimeConfig::grpc_health_bind)
/// (`KEEL_GRPC_HEALTH_BIND`) is set. It starts first and stops last, so
/// that a mesh sees the service starting, and draining, as `NOT_SERVING`.
///
/// | name | `SERVING` when | else |
/// |---|---|---|
/// | `""` (the whole service) | ready: the runtime is `Running`, not draining, and no critical check is Unhealthy (Healthy or Degraded) | `NOT_SERVING` (starting, draining or stopping, a critical dependency down) |
/// | a check (`database`, `redis`, ...) | the check is Healthy or Degraded | `NOT_SERVING` |
/// | a component (`database`, `outbox-relay`, ...) | the runtime is `Running` (every component has started) | `NOT_SERVING` |
/// | any other name | — | `NOT_FOUND` |
///
/// A name that is both a component and a check serves when both do. The
/// statuses are read from the health coordinator's snapshot every 200 ms,
/// and a `Watch` stream sends each change (only changes) within that.
pub struct GrpcHealth {
    bind: SocketAddr,
    health: HealthCoordinator,
    runtime: watch::Receiver<ServiceStatus>,
    components: Vec<String>,
    running: std::sync::Mutex<Option<Running>>,
    /// Where it listens once started, shared with the runtime.
    address: Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    server: JoinHandle<()>,
    updater: JoinHandle<()>,
}

impl std::fmt::Debug for GrpcHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcHealth")
            .field("bind", &self.bind)
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

impl GrpcHealth {
    /// Serves the health of `health`, `runtime` and `components` on `bind`.
    pub(crate) fn new(
        bind: SocketAddr,
        health: HealthCoordinator,
        runtime: watch::Receiver<ServiceStatus>,
        components: Vec<String>,
    ) -> Self {
        GrpcHealth {
            bind,
            health,
            runtime,
            components,
            running: std::sync::Mutex::new(None),
            address: Arc::default(),
        }
    }

    /// The address it will listen on, once started (with port 0, the port
    /// the system chose), shared with the runtime.
    pub(crate) fn address(&self) -> Arc<std::sync::Mutex<Option<SocketAddr>>> {
        Arc::clone(&self.address)
    }
}

/// Every service name and its status now.
fn statuses(
    health: &HealthCoordinator,
    runtime: ServiceStatus,
    components: &[String],
) -> Vec<(String, ServingStatus)> {
    let serving = |yes: bool| {
        if yes {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    let checks = health.check_statuses();
    let mut out = vec![(String::new(), serving(health.is_ready()))];
    for (name, status) in &checks {
        let component_ok = !components.contains(name) || runtime == ServiceStatus::Running;
        out.push((
            name.clone(),
            serving(*status != HealthStatus::Unhealthy && component_ok),
        ));
    }
    for name in components {
        if !checks.iter().any(|(check, _)| check == name) {
            out.push((name.clone(), serving(runtime == ServiceStatus::Running)));
        }
    }
    out
}

/// Sets the statuses that changed.
async fn publish(
    reporter: &HealthReporter,
    known: &mut Vec<(String, ServingStatus)>,
    now: Vec<(String, ServingStatus)>,
) {
    for (name, status) in now {
        match known.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) if *old == status => {}
            Some((_, old)) => {
                *old = status;
                reporter.set_service_status(&name, status).await;
            }
            None => {
                reporter.set_service_status(&name, status).await;
                known.push((name, status));
            }
        }
    }
}

impl Component for GrpcHealth {
    fn name(&self) -> &str {
        "grpc-health"
    }

    async fn start(&self) -> Result<()> {
        if self.running.lock().unpoisoned().is_some() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.bind)
            .await
            .map_err(|e| {
                Error::invalid_argument(
                    "KEEL_GRPC_HEALTH_BIND",
                    format!("cannot listen for gRPC health on {}: {e}", self.bind),
                )
            })?;
        let address = listener.local_addr().map_err(Error::internal)?;
        let (reporter, service) = tonic_health::server::health_reporter();
        let mut known = Vec::new();
        let runtime_now = *self.runtime.borrow();
        let now = statuses(&self.health, runtime_now, &self.components);
        publish(&reporter, &mut known, now).await;
        let (health, runtime, components) = (
            self.health.clone(),
            self.runtime.clone(),
            self.components.clone(),
        );
        let updater = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            loop {
                tick.tick().await;
                let runtime_now = *runtime.borrow();
                let now = statuses(&health, runtime_now, &components);
                publish(&reporter, &mut known, now).await;
            }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "the gRPC health server stopped");
            }
        });
        tracing::info!(address = %address, "serving gRPC health");
        *self.address.lock().unpoisoned() = Some(address);
        *self.running.lock().unpoisoned() = Some(Running {
            stop,
            server,
            updater,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        let running = self.running.lock().unpoisoned().take();
        if let Some(running) = running {
            *self.address.lock().unpoisoned() = None;
            running.updater.abort();
            let _ = running.stop.send(());
            let _ = running.server.await;
        }
        Ok(())
    }
}
