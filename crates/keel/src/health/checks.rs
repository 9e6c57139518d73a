//! The database check. (Redis and disk volumes have theirs in
//! `redis_check` and `volume_check`; the runtime's own check is
//! `lifecycle::RuntimeCheck`; each circuit breaker has one too.)

use std::time::Instant;

use super::{HealthCheck, Observation};
use crate::Keel;

/// The database: a ping through the pool, its latency observed. Critical.
#[derive(Clone, Debug)]
pub struct DatabaseCheck {
    keel: Keel,
}

impl DatabaseCheck {
    /// Checks the database of `keel`.
    pub fn new(keel: Keel) -> Self {
        DatabaseCheck { keel }
    }
}

impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }

    fn critical(&self) -> bool {
        true
    }

    async fn check(&self) -> Observation {
        let started = Instant::now();
        match self.keel.db().ping().await {
            Ok(()) => {
                Observation::healthy().with_value(started.elapsed().as_secs_f64() * 1000.0, "ms")
            }
            // The error's text is Keel's client-safe one: never the URL.
            Err(err) => Observation::unhealthy(crate::Error::from(err).to_string()),
        }
    }
}
