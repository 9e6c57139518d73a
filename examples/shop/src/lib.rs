//! # shop: the example REST app of Keel
//!
//! Products (cached, audited, soft-deleted), customers, and orders placed in
//! one transaction, served by `keel-axum` with bearer-token authentication,
//! health, metrics, OpenAPI and an interactive `/docs` page.
//!
//! ```sh
//! cargo run -p shop                          # SQLite file shop.db, in-process cache, open dev mode
//! SHOP_TOKENS=alice:s3cret-s3cret-s3cret-s3cret-s3cret-s3 cargo run -p shop # writes need `Authorization: Bearer s3cret-s3cret-s3cret-s3cret-s3cret-s3`
//! DATABASE_URL=postgres://postgres@127.0.0.1/shop REDIS_URL=redis://127.0.0.1:6379 cargo run -p shop
//! cargo run -p shop -- seed --products 100000
//! ```

pub mod auth;
pub mod entities;
pub mod migrate;
pub mod orders;
pub mod seed;
pub mod shipments;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use keel::event::Subscription;
use keel::health::{CheckPolicy, VolumeCheck};
use keel::lifecycle::{Runtime, RuntimeConfig, StartupError};
use keel::metrics::Metrics;
use keel::prelude::*;
use keel::{KeelBuilder, KeelConfig, View};
use keel_axum::{Access, ApiDoc, ApiError, Operation, RateLimit, ServeConfig};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use auth::Tokens;
use entities::{customer, order, product, shipment};

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://shop.db?mode=rwc";
/// The address used when `BIND` is not set.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The shop's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `BIND`: where to listen.
    pub bind: String,
    /// Keel's settings: `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]),
    /// `REDIS_URL` (the shared cache tier; unset keeps the cache in
    /// process), `KEEL_DB_MAX_CONNECTIONS`, `KEEL_PAGE_TOKEN_SECRET`, ...
    pub keel: KeelConfig,
    /// `SHOP_TOKENS` (`name:token,...`); `None` is the open development mode.
    pub tokens: Option<Tokens>,
    /// `SHOP_RATE_LIMIT`: requests a second per caller; `None` is no limit.
    pub rate_limit: Option<NonZeroU32>,
    /// `SHOP_ALLOW_OPEN=true`: allow the open development mode on an
    /// address other than loopback (default: refused at start).
    pub allow_open: bool,
    /// The runtime's settings (`KEEL_DRAIN_DELAY_MS`, ...).
    pub runtime: RuntimeConfig,
    /// The HTTP server's limits (`KEEL_HTTP_*`; the drain timeout is the
    /// runtime's `KEEL_DRAIN_TIMEOUT_MS`).
    pub http: ServeConfig,
}

impl Config {
    /// Reads the environment; a malformed value is an error naming it.
    pub fn from_env() -> Result<Config, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let tokens = var("SHOP_TOKENS")
            .map(|v| Tokens::parse(&v).map_err(|e| format!("SHOP_TOKENS: {e}")))
            .transpose()?;
        let rate_limit = var("SHOP_RATE_LIMIT")
            .map(|v| {
                v.trim()
                    .parse::<NonZeroU32>()
                    .map_err(|_| format!("SHOP_RATE_LIMIT must be a positive integer, got {v:?}"))
            })
            .transpose()?;
        let mut keel = KeelConfig::from_env().map_err(|e| e.to_string())?;
        // Keel's own tables are migrations of the shop's migrator.
        keel.auto_migrate = false;
        if var("DATABASE_URL").is_none() {
            keel.database_url = DEFAULT_DATABASE_URL.to_owned();
        }
        keel.service_name = "shop".to_owned();
        // Without a broker, events still go through the outbox: the relay
        // feeds the in-process bus, and the shipments consumer runs in
        // process. `KEEL_EVENTS_SINK=none` turns the outbox off.
        if var("KEEL_EVENTS_SINK").is_none() && !keel.events.sink.is_durable() {
            keel.events.sink = keel::outbox::SinkKind::Bus;
        }
        if let keel::outbox::SinkKind::Nats { stream, .. } = &mut keel.events.sink
            && var("KEEL_EVENTS_STREAM").is_none()
        {
            *stream = keel::outbox::default_stream("shop");
        }
        let allow_open = match var("SHOP_ALLOW_OPEN").as_deref().map(str::trim) {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(format!(
                    "SHOP_ALLOW_OPEN must be true or false, got {other:?}"
                ));
            }
        };
        let runtime = RuntimeConfig::from_env().map_err(|e| e.to_string())?;
        let http = ServeConfig::from_env()
            .map_err(|e| e.to_string())?
            .drain_timeout(runtime.drain_timeout);
        Ok(Config {
            bind: var("BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned()),
            keel,
            tokens,
            rate_limit,
            allow_open,
            runtime,
            http,
        })
    }

    /// A configuration for tests and embedding: this database, listening on
    /// a free loopback port, open mode, a short drain delay.
    pub fn for_database(database_url: impl Into<String>) -> Config {
        let mut runtime = RuntimeConfig::default();
        runtime.drain_delay = Duration::from_millis(50);
        let mut keel = KeelConfig::new(database_url);
        keel.auto_migrate = false;
        keel.service_name = "shop".to_owned();
        let http = ServeConfig::new().drain_timeout(runtime.drain_timeout);
        Config {
            bind: "127.0.0.1:0".to_owned(),
            keel,
            tokens: None,
            rate_limit: None,
            allow_open: false,
            runtime,
            http,
        }
    }
}

/// Connects Keel (database, cache) with the shop's settings and applies the
/// pending migrations ([`migrate::up`]).
pub async fn connect(config: &Config, subscribers: Vec<Subscription>) -> keel::Result<Keel> {
    let keel = connect_only(config, subscribers).await?;
    let ran = migrate::up(keel.db()).await?;
    if ran > 0 {
        tracing::info!(ran, "migrations applied");
    }
    Ok(keel)
}

/// Connects Keel (database, cache) with the shop's settings, without
/// migrating.
pub async fn connect_only(config: &Config, subscribers: Vec<Subscription>) -> keel::Result<Keel> {
    let mut builder = KeelBuilder::from_config(config.keel.clone());
    for s in subscribers {
        builder = builder.subscriber(s);
    }
    builder.connect().await
}

/// The OpenAPI document of the shop as callers with `view` see it
/// ([`View::Public`]: without the private fields).
pub fn openapi(bearer: bool, view: View) -> ApiDoc {
    let mut doc = ApiDoc::new("shop", env!("CARGO_PKG_VERSION"))
        .description(
            "The example app of Keel: products, customers and orders. Errors are `{\"error\": {type, code, message, details}}`.",
        )
        .view(view);
    if bearer {
        doc = doc.bearer_auth();
    }
    orders::document(
        doc.resource::<product::Entity>()
            .resource::<customer::Entity>()
            .resource_only::<order::Entity>(&ORDER_OPERATIONS)
            .resource_only::<shipment::Entity>(&SHIPMENT_OPERATIONS),
        bearer,
    )
    .ops()
    .info()
}

/// The generic routes of orders; placing, reading and cancelling one are
/// the shop's own ([`orders::routes`]).
const ORDER_OPERATIONS: [Operation; 3] = [Operation::List, Operation::Count, Operation::History];

/// Shipments are written by the shipments consumer only: read over HTTP.
const SHIPMENT_OPERATIONS: [Operation; 4] = [
    Operation::List,
    Operation::Count,
    Operation::Get,
    Operation::History,
];

/// Products: anyone reads the live catalogue; writes, the audit history and
/// deleted rows need a token. Customers and orders: every operation needs
/// one. In open mode, anything goes.
fn policy(open: bool, private: bool) -> impl Fn(&Access<'_>) -> Result<(), ApiError> {
    move |access| {
        let staff_only = private
            || access.operation.is_write()
            || access.operation == Operation::History
            || access.show_deleted;
        if open || access.identity.is_some() || !staff_only {
            Ok(())
        } else {
            Err(ApiError::unauthenticated(format!(
                "this operation on {}s needs a valid bearer token (Authorization: Bearer ...)",
                access.resource
            )))
        }
    }
}

/// The whole HTTP app.
pub fn app(
    keel: &Keel,
    runtime: &Runtime,
    metrics: Option<Metrics>,
    tokens: Option<Tokens>,
    rate_limit: Option<NonZeroU32>,
) -> Router {
    let open = tokens.is_none();
    // A rate limit, or failed sign-ins past their budget, answer 429.
    let limited = rate_limit.is_some() || !open;
    let document = |view: View| {
        let doc = openapi(!open, view).config(keel.config());
        if limited { doc.rate_limited() } else { doc }
    };
    // Private fields (a product's cost, a customer's phone) are the staff's:
    // every token holder, or everyone in open mode.
    let reveal = move |access: &Access<'_>| open || access.identity.is_some();
    let docs = if open {
        keel_axum::docs_routes(document(View::All))
    } else {
        keel_axum::docs_routes_by_view(document(View::All), document(View::Public), |who| {
            who.is_some()
        })
    };
    let api = Router::new()
        .merge(
            keel_axum::routes(keel.service::<product::Entity>())
                .authorize(policy(open, false))
                .reveal_private(reveal),
        )
        .merge(
            keel_axum::routes(keel.service::<customer::Entity>())
                .authorize(policy(open, true))
                .reveal_private(reveal),
        )
        .merge(
            keel_axum::routes(keel.service::<order::Entity>())
                .only(&ORDER_OPERATIONS)
                .authorize(policy(open, true))
                .reveal_private(reveal),
        )
        .merge(
            keel_axum::routes(keel.service::<shipment::Entity>())
                .only(&SHIPMENT_OPERATIONS)
                .authorize(policy(open, true))
                .reveal_private(reveal),
        )
        .merge(orders::routes(keel.clone(), open))
        // The full health report, the metrics and the build are the staff's.
        .merge(
            keel_axum::report_routes(runtime.health().clone(), metrics)
                .merge(keel_axum::info_routes(runtime.build_info().clone()))
                .route_layer(from_fn_with_state(open, staff_only)),
        )
        .merge(docs)
        .fallback(keel_axum::no_route)
        .method_not_allowed_fallback(keel_axum::wrong_method);
    let api = match rate_limit {
        Some(n) => api.layer(from_fn_with_state(
            RateLimit::per_second(n),
            RateLimit::middleware,
        )),
        None => api,
    };
    // Probes are public, and outside the rate limit: an orchestrator polls them.
    api.merge(
        keel_axum::probe_routes(runtime.health().clone())
            .method_not_allowed_fallback(keel_axum::wrong_method),
    )
    // One stack, outermost first, so that each request goes through one
    // boxed route rather than one per layer (`Router::layer` wraps every
    // route in each layer it is given).
    .layer(
        tower::ServiceBuilder::new()
            .layer(keel_axum::RequestIdLayer)
            .layer(keel_axum::HttpMetricsLayer)
            // A panic anywhere inside is a 500 envelope with the request id, counted.
            .layer(keel_axum::catch_panic())
            // Each request is in-flight work a graceful shutdown waits for.
            .layer(keel_axum::InFlightLayer::new(runtime.clone()))
            .layer(auth::AuthLayer::new(auth::Auth::new(tokens))),
    )
}

/// `401` for a caller without a token, unless the shop is open.
async fn staff_only(State(open): State<bool>, request: Request, next: Next) -> Response {
    if open || request.extensions().get::<keel_axum::Identity>().is_some() {
        return next.run(request).await;
    }
    let err =
        ApiError::unauthenticated("this needs a valid bearer token (Authorization: Bearer ...)");
    axum::response::IntoResponse::into_response(err.for_request(request.extensions()))
}

/// A running shop.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its Keel.
    pub keel: Keel,
    /// Its runtime.
    pub runtime: Runtime,
    stop: Arc<Notify>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    drain_delay: Duration,
}

impl Server {
    /// The base URL, such as `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A graceful shutdown: readiness turns false; after the drain delay
    /// no new connection is taken and open ones get at most the drain
    /// timeout to finish; only then, with the server stopped, event
    /// deliveries finish and the components (the database pool) stop.
    pub async fn shutdown(self) {
        self.runtime.begin_drain();
        tokio::time::sleep(self.drain_delay).await;
        self.stop.notify_one();
        match self.served.await {
            Ok(Err(err)) => tracing::warn!(error = %err, "the HTTP server stopped with an error"),
            Err(err) => tracing::warn!(error = %err, "the HTTP server task failed"),
            Ok(Ok(())) => {}
        }
        self.runtime.drain().await;
        for record in self.runtime.stop().await {
            if let Err(err) = record.outcome {
                tracing::warn!(component = %record.component, error = %err, "a component did not stop cleanly");
            }
        }
    }
}

/// Starts the shop: connects, migrates, starts the runtime (database pool,
/// health checks), and serves HTTP on `config.bind`.
pub async fn start(config: Config, subscribers: Vec<Subscription>) -> Result<Server, String> {
    if config.tokens.is_none() && !config.allow_open && !is_loopback(&config.bind) {
        return Err(format!(
            "refusing the open development mode (anyone may write) on {}: set SHOP_TOKENS, \
             bind a loopback address (127.0.0.1:8080), or set SHOP_ALLOW_OPEN=true",
            config.bind
        ));
    }
    let keel = connect(&config, subscribers)
        .await
        .map_err(|e| format!("cannot connect: {e} ({})", source_of(&e)))?;
    let mut runtime = Runtime::builder("shop", env!("CARGO_PKG_VERSION"))
        .revision(env!("SHOP_GIT_REVISION"))
        .config(config.runtime.clone())
        .keel(&keel);
    if keel.outbox_enabled() {
        // The relay publishes the committed events (to NATS, or to the
        // in-process bus, where the shipments consumer then runs).
        runtime = runtime.component(
            keel::outbox::Relay::new(&keel).map_err(|e| e.to_string())?,
            &["database"],
        );
        if keel.config().events.sink == keel::outbox::SinkKind::Bus {
            keel.events()
                .subscribe(shipments::in_process(&keel))
                .map_err(|e| e.to_string())?;
        }
    }
    let runtime = runtime.build().map_err(|e| e.to_string())?;
    runtime
        .health()
        .register(
            VolumeCheck::new(".", 5.0, 2.0),
            CheckPolicy::default().thresholds(1, 1),
        )
        .map_err(|e| e.to_string())?;
    runtime
        .start()
        .await
        .map_err(|e| StartupError::into_error(e).to_string())?;
    let metrics = Metrics::install().map_err(|e| e.to_string())?;
    let app = app(
        &keel,
        &runtime,
        Some(metrics),
        config.tokens.clone(),
        config.rate_limit,
    );
    let listener = TcpListener::bind(&config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    let limits = config.http.clone();
    let served = tokio::spawn(async move {
        keel_axum::serve(
            listener,
            app,
            async move { stopped.notified().await },
            limits,
        )
        .await
    });
    Ok(Server {
        addr,
        keel,
        runtime,
        stop,
        served,
        drain_delay: config.runtime.drain_delay,
    })
}

/// Whether `bind` is a loopback address (`127.0.0.1:8080`, `[::1]:80`,
/// `localhost:8080`).
fn is_loopback(bind: &str) -> bool {
    let host = bind.rsplit_once(':').map_or(bind, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn source_of(err: &keel::Error) -> String {
    std::error::Error::source(err).map_or_else(|| "no detail".to_owned(), ToString::to_string)
}
