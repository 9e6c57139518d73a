//! Structured logs with `tracing`.
//!
//! Keel logs through `tracing`: every service operation as an event with
//! `entity`, `operation`, `outcome`, `duration_ms` and `request_id` (target
//! `keel::operation`, level `info`, `error` for internal errors with their
//! cause), and the runtime, health, breaker and event-bus events. Install a
//! subscriber with [`init_logging`], or your own.

use crate::{Error, Result};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// `KEEL_LOG_FORMAT` (`json` or `text`, default `text`).
    pub fn from_env() -> Result<LogFormat> {
        match std::env::var("KEEL_LOG_FORMAT").as_deref().map(str::trim) {
            Err(_) | Ok("") | Ok("text") => Ok(LogFormat::Text),
            Ok("json") => Ok(LogFormat::Json),
            Ok(other) => Err(Error::invalid_argument(
                "configuration",
                format!("KEEL_LOG_FORMAT must be json or text, not {other:?}"),
            )),
        }
    }
}

#[cfg(feature = "telemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "telemetry")))]
/// Installs a `tracing` subscriber writing to standard output in `format`,
/// filtered by `RUST_LOG` (default `info`). Fails if one is installed already.
///
/// With the `otel` feature, it also exports traces over OTLP when the
/// standard variables ask for it ([`TracingConfig::from_env`]: an
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, ...), and each log line written inside a
/// traced span carries its `trace_id` and `span_id`. A configuration it
/// cannot honour (an unknown sampler or protocol, a ratio out of range)
/// is an error here, before anything runs; a collector that is down or
/// refuses costs nothing but a logged warning: spans wait in a bounded
/// queue, exports are retried with backoff a bounded number of times,
/// then dropped, and no request ever waits on them.
pub fn init_logging(format: LogFormat) -> Result<()> {
    #[cfg(feature = "otel")]
    {
        init_logging_with(format, TracingConfig::from_env()?)
    }
    #[cfg(not(feature = "otel"))]
    {
        install(format)
    }
}

#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
/// [`init_logging`] with tracing as given (`None`: no traces) instead of as
/// the `OTEL_*` variables say.
///
/// ```no_run
/// use keel::telemetry::{LogFormat, Sampler, TracingConfig, init_logging_with};
///
/// # #[tokio::main] async fn main() -> keel::Result<()> {
/// let tracing = TracingConfig::http("http://127.0.0.1:4318")?
///     .sampler(Sampler::ParentBasedTraceIdRatio(0.1));
/// init_logging_with(LogFormat::Json, Some(tracing))?;
/// # Ok(()) }
/// ```
pub fn init_logging_with(format: LogFormat, tracing: Option<TracingConfig>) -> Result<()> {
    install(format, tracing)
}

#[cfg(feature = "telemetry")]
fn install(
    format: LogFormat,
    #[cfg(feature = "otel")] tracing: Option<TracingConfig>,
) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer();
    let fmt = match format {
        LogFormat::Text => fmt
            .event_format(ids::WithTraceIds::new(
                tracing_subscriber::fmt::format(),
                false,
            ))
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .map_event_format(|inner| ids::WithTraceIds::new(inner, true))
            .boxed(),
    };
    let subscriber = tracing_subscriber::registry().with(fmt.with_filter(filter));
    #[cfg(feature = "otel")]
    let subscriber = subscriber.with(match tracing {
        Some(config) => Some(otel::layer(&config)?),
        None => None,
    });
    let dispatch = tracing::Dispatch::new(subscriber);
    #[cfg(feature = "otel")]
    ids::remember(&dispatch);
    tracing::dispatcher::set_global_default(dispatch)
        .map_err(|e| Error::internal(format!("cannot install the log subscriber: {e}")))?;
    log_panics();
    Ok(())
}

#[cfg(feature = "otel")]
pub(crate) use otel::tracing_active;
#[cfg(feature = "otel")]
pub use otel::{Sampler, TracingConfig, TracingProtocol, flush_traces};

/// Sends the spans not yet exported and waits for the collector (at most a
/// few seconds); nothing without the `otel` feature or when tracing is not
/// configured. The runtime calls it at the end of a graceful shutdown.
#[cfg(not(feature = "otel"))]
pub fn flush_traces() {}

#[cfg(feature = "telemetry")]
mod ids;
#[cfg(feature = "otel")]
mod otel;

/// Makes a panic one `error` event (target `panic`: message, location, and
/// the backtrace when `RUST_BACKTRACE` asks for one) in the log's format,
/// instead of text on standard error beside it. [`init_logging`] calls it.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(target: "panic", %message, %location, %backtrace, "panic");
        } else {
            tracing::error!(target: "panic", %message, %location, "panic");
        }
    }));
}
