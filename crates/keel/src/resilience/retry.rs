//! Retrying an operation that failed for a passing reason.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::{Context, Result};

/// How often, and how patiently, an operation that failed for a passing
/// reason is run again.
///
/// For [transactions](crate::tx), only `ABORTED` errors are retried: PostgreSQL serialization failures and
/// deadlocks (SQLSTATE `40001`, `40P01`, and `55P03` for `NOWAIT`),
/// MySQL/MariaDB deadlocks and lock-wait timeouts (1213, 1205), a busy SQLite
/// database, and [`Error::aborted`](crate::Error::aborted) returned by the
/// closure itself. Delays grow exponentially from `min_delay` to `max_delay`,
/// with full jitter, and never run past the context's deadline.
///
/// ```
/// use keel::resilience::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::attempts(5).min_delay(Duration::from_millis(10));
/// assert_eq!(policy.max_attempts(), 5);
/// assert_eq!(RetryPolicy::never().max_attempts(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: usize,
    min_delay: Duration,
    max_delay: Duration,
}

impl RetryPolicy {
    /// Up to `n` attempts in all (at least one).
    pub fn attempts(n: usize) -> Self {
        RetryPolicy {
            max_attempts: n.max(1),
            ..RetryPolicy::default()
        }
    }

    /// One attempt: a lost race is returned as `ABORTED` at once.
    pub fn never() -> Self {
        RetryPolicy::attempts(1)
    }

    /// The first delay (before jitter).
    #[must_use]
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self.max_delay = self.max_delay.max(delay);
        self
    }

    /// The longest delay.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay.max(self.min_delay);
        self
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> usize {
        self.max_attempts
    }

    /// The delays before the second, third, ... attempt.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.max_attempts - 1)
            .build()
    }
}

impl Default for RetryPolicy {
    /// 4 attempts, delays from 5 ms to 250 ms.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(250),
        }
    }
}

/// Runs `op` again, as `policy` allows, while it fails with a retriable
/// error (`ABORTED`, `UNAVAILABLE`; see [`Error::is_retriable`](crate::Error::is_retriable)), with
/// exponential backoff and full jitter, never past the context's deadline.
/// Any other error is returned at once.
///
/// ```no_run
/// # async fn demo(keel: keel::Keel) -> keel::Result<()> {
/// use keel::resilience::{RetryPolicy, retry};
///
/// let ctx = keel::Context::system();
/// retry(&ctx, &RetryPolicy::attempts(5), || async { keel.db().ping().await.map_err(keel::Error::from) }).await?;
/// # Ok(()) }
/// ```
pub async fn retry<T, F, Fut>(ctx: &Context, policy: &RetryPolicy, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delays = policy.delays();
    loop {
        let err = match ctx.within_deadline(op()).await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retriable() => err,
            Err(err) => return Err(err),
        };
        let Some(delay) = delays.next() else {
            return Err(err);
        };
        if ctx
            .deadline()
            .is_some_and(|d| tokio::time::Instant::now() + delay >= d)
        {
            return Err(err);
        }
        tracing::debug!(error = %err, ?delay, "retrying");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn retries_only_retriable_errors() {
        let policy = RetryPolicy::attempts(4).min_delay(Duration::from_millis(1));
        let calls = AtomicUsize::new(0);
        let out = retry(&Context::system(), &policy, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(Error::aborted("again"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.unwrap(), 2);

        let calls = AtomicUsize::new(0);
        let err = retry(&Context::system(), &policy, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::rejected("NO", "no")) }
        })
        .await
        .unwrap_err();
        assert_eq!((calls.load(Ordering::SeqCst), err.code()), (1, "NO"));

        let calls = AtomicUsize::new(0);
        let err = retry(&Context::system(), &policy, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::aborted("always")) }
        })
        .await
        .unwrap_err();
        assert_eq!((calls.load(Ordering::SeqCst), err.code()), (4, "ABORTED"));
    }

    #[tokio::test]
    async fn never_sleeps_past_the_deadline() {
        let policy = RetryPolicy::attempts(10).min_delay(Duration::from_millis(200));
        let ctx = Context::system().with_timeout(Duration::from_millis(50));
        let started = std::time::Instant::now();
        let err = retry(&ctx, &policy, || async {
            Err::<(), _>(Error::aborted("x"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.code(), "ABORTED");
        assert!(started.elapsed() < Duration::from_millis(200));
    }
}
