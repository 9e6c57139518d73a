//! Resilience: retries with backoff and a circuit breaker.
//!
//! [`retry`] runs an operation again while it fails with a retriable error
//! (`ABORTED`, `UNAVAILABLE`), with exponential backoff and full jitter
//! (computed by `backon`), within the context's deadline. [`CircuitBreaker`]
//! stops calling a dependency that keeps failing (resilience4j semantics:
//! count-based sliding window, minimum calls, failure-rate and slow-call
//! thresholds, wait in open state, limited half-open probes, automatic
//! open -> half-open transition), with state metrics and a health check.

mod breaker;
mod retry;

pub use breaker::{BreakerCheck, BreakerConfig, BreakerState, CircuitBreaker, Permit};
pub use retry::{RetryPolicy, retry};
