//! The runtime a service stands on: components, health, metrics, logs.
//!
//! ```sh
//! cargo run -p keel-rs --example runtime
//! REDIS_URL=redis://127.0.0.1:6379 KEEL_LOG_FORMAT=json cargo run -p keel-rs --example runtime
//! ```
//!
//! Starts a runtime (the database pool as a component, plus a component of
//! its own), registers the built-in health checks (database, runtime, disk
//! volume, and with `REDIS_URL` the cache's Redis tier behind its circuit
//! breaker), runs
//! a short workload, prints the health report and the Prometheus metrics
//! text, and shuts down gracefully. With `--wait` it keeps running until
//! SIGTERM or Ctrl-C.

#![allow(unreachable_pub)]

use std::time::Duration;

use keel::health::{CheckPolicy, VolumeCheck};
use keel::lifecycle::{Component, Runtime, RuntimeConfig, StartupError};
use keel::metrics::Metrics;
use keel::prelude::*;
use keel::telemetry::{LogFormat, init_logging};

mod note {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
    #[sea_orm(table_name = "example_notes")]
    #[service(name = "note", cache)]
    pub struct Model {
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        #[service(filter(eq))]
        pub text: String,
        #[service(version)]
        pub version: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A component of the application's own, started after the database.
struct Mailer;

impl Component for Mailer {
    fn name(&self) -> &str {
        "mailer"
    }

    async fn start(&self) -> keel::Result<()> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }

    async fn stop(&self) -> keel::Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> keel::Result<()> {
    init_logging(LogFormat::from_env()?)?;
    let metrics = Metrics::install()?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let mut builder = Keel::builder()
        .database_url(url)
        .service_name("shop")
        .page_token_secret("example-secret-example-secret-example");
    if let Ok(redis_url) = std::env::var("REDIS_URL") {
        // The shared cache tier; its checks (redis, its breaker, pending
        // invalidations) join the runtime's health.
        builder = builder.redis_url(redis_url);
    }
    let keel = builder.connect().await?;
    keel.create_table(note::Entity).await?;

    let mut config = RuntimeConfig::from_env()?;
    config.drain_delay = Duration::from_millis(100);
    let runtime = Runtime::builder("shop", env!("CARGO_PKG_VERSION"))
        .config(config)
        .keel(&keel)
        .component(Mailer, &["database"])
        .build()?;
    runtime.health().register(
        VolumeCheck::new(".", 10.0, 5.0),
        CheckPolicy::default().thresholds(1, 1),
    )?;
    runtime.start().await.map_err(StartupError::into_error)?;

    // A short workload (notes are cached).
    let notes = keel.service::<note::Entity>();
    let ctx = Context::actor("alice").with_request_id("example-1");
    let n = notes
        .create(
            &ctx,
            note::NewNote {
                text: "hello".into(),
            },
        )
        .await?;
    notes
        .update(
            &ctx,
            n.id,
            note::NotePatch::default().text("hello again".to_owned()),
        )
        .await?;
    notes.get(&ctx, n.id).await?; // a miss: read from the database, cached
    notes.get(&ctx, n.id).await?; // a hit
    let _ = notes.get(&ctx, 4242).await; // NOT_FOUND, counted as such
    notes.list(&ctx, &ListQuery::new()).await?;
    keel.record_pool_metrics();
    runtime.health().run_once().await;

    println!("--- health report");
    println!(
        "{}",
        serde_json::to_string_pretty(&runtime.health().report()).map_err(keel::Error::internal)?
    );
    println!("--- metrics");
    for line in metrics.render().lines() {
        if line.starts_with("keel_") || line.starts_with("# TYPE keel_") {
            println!("{line}");
        }
    }

    if std::env::args().any(|a| a == "--wait") {
        println!("--- running; SIGTERM or Ctrl-C stops it");
        runtime.run_until_signal().await;
    } else {
        runtime.shutdown().await;
    }
    println!("--- stopped: {}", runtime.status());
    Ok(())
}
