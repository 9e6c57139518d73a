//! What the runtime starts and stops.

use std::pin::Pin;
use std::time::Instant;

use tokio::sync::watch;

use super::ServiceStatus;
use crate::health::{CheckPolicy, DatabaseCheck, HealthCheck, HealthCoordinator, Observation};
use crate::resilience::{RetryPolicy, retry};
use crate::sync::Unpoison as _;
use crate::{Context, Error, Keel, Result};

/// A part of the service with a life of its own: a connection pool, a
/// cache, a server, a worker of yours.
///
/// ```
/// use keel::lifecycle::Component;
///
/// struct Mailer;
///
/// impl Component for Mailer {
///     fn name(&self) -> &str { "mailer" }
///     async fn start(&self) -> keel::Result<()> { Ok(()) /* connect */ }
///     async fn stop(&self) -> keel::Result<()> { Ok(()) /* flush, disconnect */ }
/// }
/// ```
pub trait Component: Send + Sync + 'static {
    /// The component's name, unique within a runtime; dependencies name it.
    fn name(&self) -> &str;

    /// Starts it. A failure is retried with backoff, as the runtime's
    /// configuration says.
    fn start(&self) -> impl Future<Output = Result<()>> + Send;

    /// Stops it. The runtime bounds it with its stop timeout.
    fn stop(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Registers the health checks it contributes (default: none).
    fn health_checks(&self, _health: &HealthCoordinator) -> Result<()> {
        Ok(())
    }
}

type UnitFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// [`Component`] behind a pointer.
pub(crate) trait DynComponent: Send + Sync {
    fn start(&self) -> UnitFuture<'_>;
    fn stop(&self) -> UnitFuture<'_>;
    fn health_checks(&self, health: &HealthCoordinator) -> Result<()>;
}

impl<C: Component> DynComponent for C {
    fn start(&self) -> UnitFuture<'_> {
        Box::pin(Component::start(self))
    }
    fn stop(&self) -> UnitFuture<'_> {
        Box::pin(Component::stop(self))
    }
    fn health_checks(&self, health: &HealthCoordinator) -> Result<()> {
        Component::health_checks(self, health)
    }
}

/// The database pool of a [`Keel`] as a component: started when the
/// database answers a ping (retried), stopped by closing the pool;
/// contributes the critical `database` check and keeps the pool gauges
/// (`keel_db_pool_connections{state}`) current.
#[derive(Clone, Debug)]
pub struct DatabaseComponent {
    keel: Keel,
    gauges: std::sync::Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl DatabaseComponent {
    /// The pool of `keel`.
    pub fn new(keel: Keel) -> Self {
        DatabaseComponent {
            keel,
            gauges: Default::default(),
        }
    }
}

impl Component for DatabaseComponent {
    fn name(&self) -> &str {
        "database"
    }

    async fn start(&self) -> Result<()> {
        retry(&Context::system(), &RetryPolicy::attempts(2), || async {
            self.keel.db().ping().await.map_err(Error::from)
        })
        .await?;
        let keel = self.keel.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                keel.record_pool_metrics();
                keel.cache().record_metrics();
            }
        });
        if let Some(old) = self.gauges.lock().unpoisoned().replace(task) {
            old.abort();
        }
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        if let Some(task) = self.gauges.lock().unpoisoned().take() {
            task.abort();
        }
        self.keel.close().await
    }

    fn health_checks(&self, health: &HealthCoordinator) -> Result<()> {
        health.register(
            DatabaseCheck::new(self.keel.clone()),
            CheckPolicy::default(),
        )
    }
}

/// The runtime's own status as a check: Healthy when Running, Degraded
/// while Starting or Stopping, Unhealthy when Stopped or in Error. Critical.
#[derive(Debug)]
pub struct RuntimeCheck {
    status: watch::Receiver<ServiceStatus>,
    since: Instant,
}

impl RuntimeCheck {
    /// Watches `status`.
    pub fn new(status: watch::Receiver<ServiceStatus>) -> Self {
        RuntimeCheck {
            status,
            since: Instant::now(),
        }
    }
}

impl HealthCheck for RuntimeCheck {
    fn name(&self) -> &str {
        "runtime"
    }

    fn critical(&self) -> bool {
        true
    }

    async fn check(&self) -> Observation {
        let status = *self.status.borrow();
        let observation = match status {
            ServiceStatus::Running => Observation::healthy(),
            ServiceStatus::Starting | ServiceStatus::Stopping => {
                Observation::degraded(format!("the service is {status}"))
            }
            ServiceStatus::Stopped | ServiceStatus::Error => {
                Observation::unhealthy(format!("the service is {status}"))
            }
        };
        observation.with_value(self.since.elapsed().as_secs_f64().round(), "s up")
    }
}
