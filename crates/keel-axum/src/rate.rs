//! A per-caller rate limit: 429 with `Retry-After` past it.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::{ApiError, Identity};

/// A per-caller rate limit (a GCRA token bucket, from `governor`): each
/// caller may make `per_second` requests a second on average, in bursts of
/// up to `burst`; beyond, the answer is `429 RATE_LIMITED` with
/// `Retry-After`. The caller is the [`Identity`]'s actor when authentication
/// set one, else the peer address (with `into_make_service_with_connect_info`),
/// else one shared anonymous bucket.
///
/// Add it inside the authentication middleware, so that it sees the identity:
///
/// ```no_run
/// # fn demo(app: axum::Router, authenticate: fn(axum::extract::Request, axum::middleware::Next) -> std::future::Ready<axum::response::Response>) {
/// use std::num::NonZeroU32;
/// let limit = keel_axum::RateLimit::per_second(NonZeroU32::new(50).unwrap());
/// let app = app
///     .layer(axum::middleware::from_fn_with_state(limit, keel_axum::RateLimit::middleware))
///     .layer(axum::middleware::from_fn(authenticate));
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    checks: Arc<AtomicU64>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("callers", &self.limiter.len())
            .finish()
    }
}

impl RateLimit {
    /// `per_second` requests a second per caller, in bursts of as many.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_second(per_second))
    }

    /// `per_minute` requests a minute per caller, in bursts of as many
    /// (for rare events such as failed sign-ins).
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_minute(per_minute))
    }

    /// `per_second` a second with bursts of `burst`.
    pub fn with_burst(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_second(per_second).allow_burst(burst))
    }

    fn with_quota(quota: Quota) -> Self {
        RateLimit {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            checks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether `caller` may make one more request now; else how long to wait.
    pub fn check(&self, caller: &str) -> Result<(), std::time::Duration> {
        // Forget idle callers now and then, so the table stays small.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&caller.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The middleware (for `axum::middleware::from_fn_with_state`).
    pub async fn middleware(
        State(limit): State<RateLimit>,
        request: Request,
        next: Next,
    ) -> Response {
        let caller = match request.extensions().get::<Identity>() {
            Some(identity) => format!("actor:{}", identity.actor),
            None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(peer)) => format!("ip:{}", peer.ip()),
                None => "anonymous".to_owned(),
            },
        };
        match limit.check(&caller) {
            Ok(()) => next.run(request).await,
            Err(wait) => ApiError::rate_limited(wait)
                .for_request(request.extensions())
                .into_response(),
        }
    }
}
