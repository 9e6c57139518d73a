//! Prometheus metrics: the exporter, and the names Keel records.
//!
//! Keel records through the [`metrics`](https://docs.rs/metrics) facade; with
//! no recorder installed that costs next to nothing. [`Metrics::install`]
//! installs a Prometheus recorder whose histograms have buckets (not
//! summaries); [`Metrics::render`] gives the text format `/metrics` serves.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `keel_operations_total` | counter | `entity`, `operation`, `outcome` (`ok` or the error code) |
//! | `keel_operation_duration_seconds` | histogram | `entity`, `operation` |
//! | `keel_db_pool_connections` | gauge | `state` (`in_use`, `idle`, `max`) |
//! | `keel_circuit_breaker_state` | gauge (0 closed, 1 open, 2 half-open) | `breaker` |
//! | `keel_circuit_breaker_calls_total` | counter | `breaker`, `outcome` |
//! | `keel_circuit_breaker_transitions_total` | counter | `breaker`, `to` |
//! | `keel_health_check_status` | gauge (0 healthy, 1 degraded, 2 unhealthy) | `check` |
//! | `keel_health_check_duration_seconds` | histogram | `check` |
//! | `keel_service_status` | gauge (0 stopped .. 4 error) | |
//! | `keel_event_deliveries_total` | counter | `subscriber`, `outcome` |
//! | `keel_event_handler_duration_seconds` | histogram | `subscriber` |
//! | `keel_cache_requests_total` | counter | `tier` (`l1`, `l2`), `result` (`hit`, `miss`, `error`) |
//! | `keel_cache_loads_total` | counter | |
//! | `keel_cache_invalidations_total` | counter | `result` (`ok`, `deferred`, `retried`) |
//! | `keel_outbox_published_total`, `keel_outbox_failed_total`, `keel_outbox_dead_lettered_total` | counter | |
//! | `keel_outbox_pending`, `keel_outbox_oldest_pending_seconds`, `keel_outbox_dead` | gauge | |
//! | `keel_outbox_publish_lag_seconds` | histogram (commit clock to the broker's acknowledgement) | |
//! | `keel_consumer_events_total` | counter | `consumer`, `outcome` (`handled`, `duplicate`, `failed`, `dead_lettered`) |
//!
//! `keel-axum`'s `http_metrics` records `keel_http_requests_total{route,
//! method, status}` and `keel_http_request_duration_seconds{route, method}`
//! through the same facade.

use std::collections::HashMap;
#[cfg(feature = "prometheus")]
use std::sync::OnceLock;
use std::sync::{LazyLock, RwLock};

#[cfg(feature = "prometheus")]
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::sync::Unpoison as _;
#[cfg(feature = "prometheus")]
use crate::{Error, Result};

/// Histogram buckets, in seconds: 100 µs to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[cfg(feature = "prometheus")]
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Whether [`Metrics::install`] has installed Keel's recorder in this
/// process (never, in a build without the `prometheus` feature). While it
/// has, the handles of a labelled counter or histogram may be kept and
/// reused instead of looked up per request (the recorder of a process never
/// changes once set).
pub fn recorder_installed() -> bool {
    #[cfg(feature = "prometheus")]
    return HANDLE.get().is_some();
    #[cfg(not(feature = "prometheus"))]
    false
}

/// The installed Prometheus recorder.
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
}

#[cfg(feature = "prometheus")]
impl Metrics {
    /// Installs the Prometheus recorder as the process's metrics recorder
    /// (once; later calls return the same one). Fails if another recorder
    /// was installed first.
    pub fn install() -> Result<Metrics> {
        // One installer at a time: a second caller racing the first would
        // otherwise see the global recorder taken but no handle yet.
        static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = INSTALLING.lock().unpoisoned();
        if let Some(handle) = HANDLE.get() {
            return Ok(Metrics {
                handle: handle.clone(),
            });
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .map_err(Error::internal)?
            .build_recorder();
        let handle = recorder.handle();
        match ::metrics::set_global_recorder(recorder) {
            Ok(()) => {
                let _ = HANDLE.set(handle.clone());
                Ok(Metrics { handle })
            }
            Err(_) => match HANDLE.get() {
                // Another thread won the race with the same kind of recorder.
                Some(handle) => Ok(Metrics {
                    handle: handle.clone(),
                }),
                None => Err(Error::internal(
                    "another metrics recorder is installed already",
                )),
            },
        }
    }

    /// The Prometheus text format of every metric recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Whether [`install`](Self::install) has installed Keel's recorder in
    /// this process: [`recorder_installed`].
    pub fn is_installed() -> bool {
        recorder_installed()
    }
}

/// The counter and histogram of one operation outcome, registered once.
type OperationHandles = (::metrics::Counter, ::metrics::Histogram);

/// `(entity, operation, outcome)`: the labels of one operation outcome.
type OperationKey = (&'static str, &'static str, &'static str);

/// Handles by their labels.
static OPERATIONS: LazyLock<RwLock<HashMap<OperationKey, OperationHandles>>> =
    LazyLock::new(Default::default);

/// Counts one service operation and records its duration
/// (`keel_operations_total`, `keel_operation_duration_seconds`).
pub(crate) fn record_operation(
    entity: &'static str,
    operation: &'static str,
    outcome: &'static str,
    seconds: f64,
) {
    let register = || {
        (
            ::metrics::counter!(
                "keel_operations_total",
                "entity" => entity,
                "operation" => operation,
                "outcome" => outcome
            ),
            ::metrics::histogram!(
                "keel_operation_duration_seconds",
                "entity" => entity,
                "operation" => operation
            ),
        )
    };
    let key = (entity, operation, outcome);
    let known = recorder_installed()
        .then(|| OPERATIONS.read().unpoisoned().get(&key).cloned())
        .flatten();
    let (counter, histogram) = match known {
        Some(handles) => handles,
        None => {
            let handles = register();
            if recorder_installed() {
                OPERATIONS.write().unpoisoned().insert(key, handles.clone());
            }
            handles
        }
    };
    counter.increment(1);
    histogram.record(seconds);
}
