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
pub fn init_logging(format: LogFormat) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| Error::internal(format!("cannot install the log subscriber: {e}")))?;
    log_panics();
    Ok(())
}

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
