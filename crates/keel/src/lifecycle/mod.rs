//! Lifecycle: the service status, components and the runtime that owns them.
//!
//! A [`Runtime`] owns [`Component`]s (the database pool, later the cache,
//! the broker connection, the outbox relay, the HTTP server, and yours) with
//! declared dependencies. It starts them in dependency order, a level's
//! independent components in parallel, retrying each failed start with
//! backoff; it stops them in reverse order, each within a deadline; on
//! SIGTERM or SIGINT it shuts down gracefully (readiness false first, a drain
//! delay, in-flight work finishes, then the components stop). Its
//! [`ServiceStatus`] moves only along legal transitions, and observers see
//! every one.

mod build_info;
mod component;
mod runtime;
mod status;

pub use build_info::{BuildInfo, FEATURES};
pub use component::{Component, DatabaseComponent, RuntimeCheck};
pub use runtime::{
    Runtime, RuntimeBuilder, RuntimeConfig, StartRecord, StartupError, StopRecord, WorkGuard,
    shutdown_signal,
};
pub use status::{ServiceStatus, StatusTracker, Transition};
