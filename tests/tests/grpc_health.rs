//! gRPC health (`grpc.health.v1.Health`) through a real gRPC client
//! (tonic's generated `HealthClient`), while a PostgreSQL cluster and a
//! redis-server of the test's own go down and come back, and during a
//! graceful shutdown.

use std::time::{Duration, Instant};

use keel::Keel;
use keel::lifecycle::{Runtime, RuntimeConfig};
use keel_tests::{PgCluster, RedisServer};
use tokio_stream_shim::next_status;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// Reading a `Watch` stream without another dependency.
mod tokio_stream_shim {
    use super::*;

    /// The next status the stream sends, within `within`.
    pub(super) async fn next_status(
        stream: &mut tonic::Streaming<HealthCheckResponse>,
        within: Duration,
    ) -> Option<ServingStatus> {
        let message = tokio::time::timeout(within, stream.message())
            .await
            .ok()?
            .ok()??;
        Some(message.status())
    }
}

type Client = HealthClient<tonic::transport::Channel>;

async fn check(client: &mut Client, service: &str) -> Result<ServingStatus, tonic::Code> {
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status())
        .map_err(|status| status.code())
}

async fn watch(client: &mut Client, service: &str) -> tonic::Streaming<HealthCheckResponse> {
    client
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("watch")
        .into_inner()
}

/// Waits until the stream sends `want`; how long it took.
async fn until(
    stream: &mut tonic::Streaming<HealthCheckResponse>,
    want: ServingStatus,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let left = within.saturating_sub(started.elapsed());
        match next_status(stream, left).await {
            Some(status) if status == want => return started.elapsed(),
            Some(_) => {}
            None => panic!("no {want:?} within {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_follows_dependencies_and_shutdown() {
    let Some(cluster) = PgCluster::create() else {
        eprintln!("SKIPPED: pg_createcluster is not installed");
        return;
    };
    let Some(mut redis) = RedisServer::start(RedisServer::free_port()) else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let keel = Keel::builder()
        .database_url(cluster.url())
        .redis_url(redis.url())
        .page_token_secret("grpc-health-secret-0123456789abcdef-012")
        .acquire_timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("connect");
    let mut config = RuntimeConfig::default();
    config.health_period = Duration::from_millis(100);
    config.drain_delay = Duration::from_millis(1_500);
    config.grpc_health_bind = Some("127.0.0.1:0".parse().unwrap());
    let runtime = Runtime::builder("shop", "1.0.0")
        .config(config)
        .keel(&keel)
        .build()
        .unwrap();
    runtime.start().await.unwrap();
    let address = runtime.grpc_health_address().expect("listening");
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("a gRPC connection");
    let mut client = HealthClient::new(channel);

    // Everything up: the service, each check, each component (each check
    // from its first round on, which a busy machine may still be running).
    for service in ["", "database", "redis", "runtime"] {
        let mut stream = watch(&mut client, service).await;
        until(&mut stream, ServingStatus::Serving, Duration::from_secs(10)).await;
        assert_eq!(
            check(&mut client, service).await,
            Ok(ServingStatus::Serving),
            "{service:?}"
        );
    }
    assert_eq!(
        check(&mut client, "no-such-thing").await,
        Err(tonic::Code::NotFound)
    );

    // Redis (not critical) goes down: its check stops serving, the service
    // does not; it comes back.
    let mut whole = watch(&mut client, "").await;
    let mut cache = watch(&mut client, "redis").await;
    assert_eq!(
        next_status(&mut whole, Duration::from_secs(1)).await,
        Some(ServingStatus::Serving),
        "a watch starts with the status now"
    );
    until(&mut cache, ServingStatus::Serving, Duration::from_secs(1)).await;
    redis.stop();
    let seen = tokio::spawn({
        let health = runtime.health().clone();
        async move {
            // When the coordinator itself first says Unhealthy.
            loop {
                let unhealthy = health
                    .check_statuses()
                    .iter()
                    .any(|(n, s)| n == "redis" && *s == keel::health::HealthStatus::Unhealthy);
                if unhealthy {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    until(
        &mut cache,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    let watched = Instant::now();
    let known = seen.await.unwrap();
    assert!(
        watched.duration_since(known) < Duration::from_secs(1),
        "Watch sent the change {:?} after the coordinator saw it",
        watched.duration_since(known)
    );
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::Serving));
    redis = RedisServer::start(redis.port).expect("redis again");
    until(&mut cache, ServingStatus::Serving, Duration::from_secs(10)).await;

    // The database (critical) goes down: the whole service stops serving,
    // and serves again once it is back.
    cluster.stop();
    until(
        &mut whole,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        check(&mut client, "database").await,
        Ok(ServingStatus::NotServing)
    );
    cluster.start();
    until(&mut whole, ServingStatus::Serving, Duration::from_secs(20)).await;

    // A graceful shutdown: NOT_SERVING at once, while requests still drain.
    let shutdown = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.shutdown().await }
    });
    let took = until(
        &mut whole,
        ServingStatus::NotServing,
        Duration::from_secs(1),
    )
    .await;
    assert!(took < Duration::from_secs(1));
    assert_eq!(
        check(&mut client, "").await,
        Ok(ServingStatus::NotServing),
        "still answering during the drain"
    );
    shutdown.await.unwrap();
    assert!(
        check(&mut client, "").await.is_err(),
        "the server stops with the runtime"
    );
    drop(redis);
}
