//! The disk volume check.

use std::path::PathBuf;

use super::{HealthCheck, Observation};

/// Free space of the file system holding a path: Degraded below the warning
/// threshold, Unhealthy below the critical one; the observed value is the
/// free percentage. Not critical.
#[derive(Clone, Debug)]
pub struct VolumeCheck {
    path: PathBuf,
    warn_free_percent: f64,
    critical_free_percent: f64,
    warn_free_bytes: u64,
    critical_free_bytes: u64,
}

impl VolumeCheck {
    /// Checks the volume of `path`, with thresholds in percent of its size.
    pub fn new(
        path: impl Into<PathBuf>,
        warn_free_percent: f64,
        critical_free_percent: f64,
    ) -> Self {
        VolumeCheck {
            path: path.into(),
            warn_free_percent,
            critical_free_percent,
            warn_free_bytes: 0,
            critical_free_bytes: 0,
        }
    }

    /// Adds thresholds in bytes: whichever is crossed first counts.
    #[must_use]
    pub fn min_free_bytes(mut self, warn: u64, critical: u64) -> Self {
        self.warn_free_bytes = warn;
        self.critical_free_bytes = critical;
        self
    }

    /// (free bytes, total bytes) of the volume.
    fn measure(&self) -> std::io::Result<(u64, u64)> {
        let stats = rustix::fs::statvfs(&self.path)?;
        let block = stats.f_frsize;
        Ok((stats.f_bavail * block, stats.f_blocks * block))
    }
}

impl HealthCheck for VolumeCheck {
    fn name(&self) -> &str {
        "volume"
    }

    async fn check(&self) -> Observation {
        let (free, total) = match self.measure() {
            Ok(m) => m,
            Err(err) => {
                return Observation::unhealthy(format!(
                    "cannot read the volume of {}: {}",
                    self.path.display(),
                    err.kind()
                ));
            }
        };
        let percent = if total == 0 {
            0.0
        } else {
            free as f64 * 100.0 / total as f64
        };
        let what = format!(
            "{:.1}% free ({} MiB of {} MiB) at {}",
            percent,
            free >> 20,
            total >> 20,
            self.path.display()
        );
        let observation = if percent < self.critical_free_percent || free < self.critical_free_bytes
        {
            Observation::unhealthy(format!("critically low: {what}"))
        } else if percent < self.warn_free_percent || free < self.warn_free_bytes {
            Observation::degraded(format!("low: {what}"))
        } else {
            Observation::healthy()
        };
        observation.with_value((percent * 10.0).round() / 10.0, "% free")
    }
}
