//! OpenTelemetry traces: the configuration from the standard `OTEL_*`
//! variables, the `tracing` layer that exports over OTLP, and flushing.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

use crate::{Error, Result};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// How spans travel to the collector (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TracingProtocol {
    /// `http/protobuf` (the default): `POST {endpoint}/v1/traces`, port 4318.
    HttpProtobuf,
    /// `grpc`: the OTLP trace service, port 4317.
    Grpc,
}

/// Which traces are kept (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Sampler {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: this share of traces, by trace id.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): as the caller decided, else
    /// every trace.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: as the caller decided, else none.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: as the caller decided, else this share.
    ParentBasedTraceIdRatio(f64),
}

/// Where and how traces are exported, read from the standard variables.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TracingConfig {
    /// The protocol.
    pub protocol: TracingProtocol,
    /// The sampler.
    pub sampler: Sampler,
    /// Where spans are sent: the trace service's URL (for HTTP, with its
    /// `/v1/traces` path); `None`: the protocol's default on localhost.
    pub endpoint: Option<String>,
}

impl TracingConfig {
    /// Every trace (`parentbased_always_on`) over OTLP/HTTP to the collector
    /// at `base` (`http://host:4318`; spans go to `{base}/v1/traces`).
    pub fn http(base: &str) -> Result<TracingConfig> {
        let base = check_endpoint(base)?;
        Ok(TracingConfig {
            protocol: TracingProtocol::HttpProtobuf,
            sampler: Sampler::ParentBasedAlwaysOn,
            endpoint: Some(format!("{}/v1/traces", base.trim_end_matches('/'))),
        })
    }

    /// Every trace (`parentbased_always_on`) over OTLP/gRPC to the
    /// collector at `url` (`http://host:4317`).
    pub fn grpc(url: &str) -> Result<TracingConfig> {
        Ok(TracingConfig {
            protocol: TracingProtocol::Grpc,
            sampler: Sampler::ParentBasedAlwaysOn,
            endpoint: Some(check_endpoint(url)?.to_owned()),
        })
    }

    /// With `sampler`.
    #[must_use]
    pub fn sampler(mut self, sampler: Sampler) -> TracingConfig {
        self.sampler = sampler;
        self
    }
}

/// An endpoint the exporter can reach: `http://` (it has no TLS client).
fn check_endpoint(endpoint: &str) -> Result<&str> {
    if endpoint.starts_with("https://") {
        // The exporter is built without a TLS client: an https collector
        // would fail every export, silently but for a log line. Said here.
        return Err(config_error(format!(
            "the OTLP endpoint {endpoint:?} asks for TLS, which this build's exporter \
             does not have: send to a collector on the node or in the pod over http://"
        )));
    }
    if !endpoint.starts_with("http://") {
        return Err(config_error(format!(
            "the OTLP endpoint must be an http:// URL, not {endpoint:?}"
        )));
    }
    Ok(endpoint)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn config_error(message: String) -> Error {
    Error::invalid_argument("configuration", message)
}

impl TracingConfig {
    /// Reads the configuration; `Ok(None)` when tracing is not asked for.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the collector (`http://`: the exporter has no TLS client); setting one turns tracing on | off |
    /// | `OTEL_TRACES_EXPORTER` | `otlp` (on, with the default endpoint) or `none` (off) | `otlp` when an endpoint is set |
    /// | `OTEL_SDK_DISABLED` | `true`: off whatever else is set | `false` |
    /// | `OTEL_EXPORTER_OTLP_PROTOCOL` / `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` | `http/protobuf` or `grpc` | `http/protobuf` |
    /// | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`; the ratio in [0, 1] | `parentbased_always_on` |
    /// | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource the spans come from | the executable's name |
    /// | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` | read by the exporter | none, 10 s |
    ///
    /// An unknown sampler, protocol or exporter, or a ratio that is not a
    /// number in [0, 1], is an error naming the variable.
    pub fn from_env() -> Result<Option<TracingConfig>> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let exporter = var("OTEL_TRACES_EXPORTER");
        match exporter.as_deref() {
            Some("none") => return Ok(None),
            None | Some("otlp") => {}
            Some(other) => {
                return Err(config_error(format!(
                    "OTEL_TRACES_EXPORTER must be otlp or none, not {other:?}"
                )));
            }
        }
        let traces_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        if traces_endpoint.is_none() && base_endpoint.is_none() && exporter.is_none() {
            return Ok(None);
        }
        for endpoint in traces_endpoint.iter().chain(&base_endpoint) {
            check_endpoint(endpoint)?;
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("http/protobuf") => TracingProtocol::HttpProtobuf,
            Some("grpc") => TracingProtocol::Grpc,
            Some(other) => {
                return Err(config_error(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc, not {other:?}"
                )));
            }
        };
        // As the specification says: the signal's own variable is the
        // URL; the general one is a base, to which HTTP adds the path.
        let endpoint = match (traces_endpoint, base_endpoint) {
            (Some(url), _) => Some(url),
            (None, Some(base)) if protocol == TracingProtocol::HttpProtobuf => {
                Some(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            (None, base) => base,
        };
        Ok(Some(TracingConfig {
            protocol,
            sampler: sampler_from_env()?,
            endpoint,
        }))
    }
}

fn sampler_from_env() -> Result<Sampler> {
    let ratio = || -> Result<f64> {
        let arg = var("OTEL_TRACES_SAMPLER_ARG").unwrap_or_else(|| "1.0".to_owned());
        match arg.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(config_error(format!(
                "OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, not {arg:?}"
            ))),
        }
    };
    Ok(match var("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("parentbased_always_on") => Sampler::ParentBasedAlwaysOn,
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatio(ratio()?),
        Some("parentbased_always_off") => Sampler::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => Sampler::ParentBasedTraceIdRatio(ratio()?),
        Some(other) => {
            return Err(config_error(format!(
                "OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off or parentbased_traceidratio, \
                 not {other:?}"
            )));
        }
    })
}

fn sdk_sampler(sampler: Sampler) -> opentelemetry_sdk::trace::Sampler {
    use opentelemetry_sdk::trace::Sampler as S;
    match sampler {
        Sampler::AlwaysOn => S::AlwaysOn,
        Sampler::AlwaysOff => S::AlwaysOff,
        Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
        Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
        Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
        Sampler::ParentBasedTraceIdRatio(r) => S::ParentBased(Box::new(S::TraceIdRatioBased(r))),
    }
}

/// Targets whose spans are never exported: the exporter's own transport
/// (a span of an export would be exported by the next one) and the
/// drivers below Keel's statement spans.
const QUIET: [&str; 10] = [
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "sqlx",
];

/// The exporting layer: Keel's spans (target `keel::span`, any level) and
/// the application's own spans at `info` and above.
pub(super) fn layer<S>(config: &TracingConfig) -> Result<Box<dyn Layer<S> + Send + Sync>>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};

    let exporter = match config.protocol {
        TracingProtocol::HttpProtobuf => {
            let builder = SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary);
            match &config.endpoint {
                Some(url) => builder.with_endpoint(url).build(),
                None => builder.build(),
            }
        }
        TracingProtocol::Grpc => {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(config_error(
                    "OTLP over gRPC needs a Tokio runtime: set up tracing inside it".to_owned(),
                ));
            }
            let builder = SpanExporter::builder().with_tonic();
            match &config.endpoint {
                Some(url) => builder.with_endpoint(url).build(),
                None => builder.build(),
            }
        }
    }
    .map_err(|e| config_error(format!("cannot set up the OTLP exporter: {e}")))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if var("OTEL_SERVICE_NAME").is_none() {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "keel".to_owned());
        resource = resource.with_service_name(name);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sdk_sampler(config.sampler))
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("keel");
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let _ = PROVIDER.set(provider);
    let mut filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target(crate::trace::SPAN_TARGET, LevelFilter::TRACE);
    for target in QUIET {
        filter = filter.with_target(target, LevelFilter::OFF);
    }
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // The span's own attributes only: no source location, thread,
        // target or busy/idle times.
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(filter)
        .boxed())
}

/// Whether traces are being exported (tracing was set up and configured).
pub(crate) fn tracing_active() -> bool {
    PROVIDER.get().is_some()
}

/// Sends the spans not yet exported and waits for the collector (the
/// exporter's timeout at most); nothing when tracing is not configured.
/// The runtime calls it at the end of a graceful shutdown.
pub fn flush_traces() {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    let flush = || {
        if let Err(e) = provider.force_flush() {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(flush);
        }
        _ => flush(),
    }
}
