//! What a running service is: its name, version, source revision and the
//! Keel it was built with.

use serde::Serialize;

/// The cargo features this build of Keel has.
pub const FEATURES: &[&str] = &[
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "mysql")]
    "mysql",
    #[cfg(feature = "sqlite")]
    "sqlite",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "prometheus")]
    "prometheus",
    #[cfg(feature = "telemetry")]
    "telemetry",
    #[cfg(feature = "volume-check")]
    "volume-check",
    #[cfg(feature = "tls")]
    "tls",
    #[cfg(feature = "nats")]
    "nats",
];

/// A service's identity, as `/info` shows it and the `keel_build_info`
/// gauge labels it: what an operator asks first of a deployed instance.
///
/// ```
/// let info = keel::lifecycle::BuildInfo::new("shop", "1.4.2").revision("3f2a9c1");
/// assert_eq!(info.revision.as_deref(), Some("3f2a9c1"));
/// assert!(info.keel_features.contains(&"sqlite"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BuildInfo {
    /// The service's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The source revision it was built from (a git commit), when known.
    pub revision: Option<String>,
    /// The version of Keel it was built with.
    pub keel_version: &'static str,
    /// Keel's cargo features in this build.
    pub keel_features: &'static [&'static str],
}

impl BuildInfo {
    /// The service `name` at `version`, revision unknown.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        BuildInfo {
            name: name.into(),
            version: version.into(),
            revision: None,
            keel_version: env!("CARGO_PKG_VERSION"),
            keel_features: FEATURES,
        }
    }

    /// Built from source revision `revision` (empty or `unknown`: none).
    #[must_use]
    pub fn revision(mut self, revision: impl Into<String>) -> Self {
        let revision = revision.into();
        self.revision = (!revision.is_empty() && revision != "unknown").then_some(revision);
        self
    }

    /// Sets `keel_build_info{service, version, revision, keel_version}` to 1
    /// (the Prometheus idiom for a build's labels).
    pub fn record_metric(&self) {
        metrics::gauge!(
            "keel_build_info",
            "service" => self.name.clone(),
            "version" => self.version.clone(),
            "revision" => self.revision.clone().unwrap_or_else(|| "unknown".to_owned()),
            "keel_version" => self.keel_version,
        )
        .set(1.0);
    }
}
