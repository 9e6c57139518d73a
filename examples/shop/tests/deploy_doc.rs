//! docs/deploy.md stays true: every route its Kubernetes manifest probes
//! answers as its table says on the shop binary, started with the
//! manifest's environment (without TLS, on SQLite), and every variable the
//! manifest sets is one the shop or Keel reads.

mod common;

use common::{sigterm_and_wait, start_with};

const DEPLOY: &str = include_str!("../../../docs/deploy.md");
const TOKEN: &str = "deploy-token-deploy-token-deploy-token";

/// The YAML block of the page.
fn manifest() -> &'static str {
    let start = DEPLOY.find("```yaml\n").expect("a YAML block") + 8;
    let len = DEPLOY[start..].find("```").expect("its end");
    &DEPLOY[start..start + len]
}

/// Each `key: value` of the manifest whose key is `key`.
fn values(key: &str) -> Vec<String> {
    manifest()
        .lines()
        .flat_map(|line| line.split(['{', ',']))
        .filter_map(|part| part.trim().strip_prefix(&format!("{key}: ")))
        .map(|v| {
            v.trim_end_matches(['}', ' '])
                .trim_matches('"')
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn every_variable_of_the_manifest_is_read_by_the_shop_or_keel() {
    let sources: String = ["../../crates/keel/src", "../../crates/keel-axum/src", "src"]
        .iter()
        .flat_map(|dir| walk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)))
        .collect();
    let names = values("name")
        .into_iter()
        .chain(values("- name"))
        .filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect::<Vec<_>>();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "{name} is set by docs/deploy.md but read nowhere"
        );
    }
}

fn walk(dir: std::path::PathBuf) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(path).unwrap_or_default());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_and_routes_of_the_manifest_answer() {
    // HTTP paths (a volume's `path: ca.pem` is a file).
    let paths: Vec<String> = values("path")
        .into_iter()
        .filter(|p| p.starts_with('/'))
        .collect();
    for probe in ["/health/started", "/health/live", "/health/ready"] {
        assert!(paths.iter().any(|p| p == probe), "{probe} in {paths:?}");
    }
    let dir = std::env::temp_dir().join(format!("shop-deploy-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_with(
        &dir,
        Some(&format!("ops:{TOKEN}")),
        &[("KEEL_LOG_FORMAT", "json"), ("KEEL_DRAIN_DELAY_MS", "100")],
    );
    let client = reqwest::Client::new();
    for path in &paths {
        let status = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}, without a token: a probe is public");
    }
    for path in ["/health", "/metrics", "/info"] {
        let url = format!("{}{path}", server.url);
        let anonymous = client.get(&url).send().await.unwrap().status();
        assert_eq!(anonymous, 401, "{path} needs the token");
        let with = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(with.status(), 200, "{path}");
    }
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(server))
        .await
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `KEEL_GRPC_HEALTH_BIND` the shop serves `grpc.health.v1.Health`:
/// `SERVING` for the service, its database and outbox relay components and
/// their checks, `NOT_FOUND` for a name it does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_serves_grpc_health_when_asked() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let port = keel_tests::RedisServer::free_port();
    let dir = std::env::temp_dir().join(format!("shop-grpc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("127.0.0.1:{port}");
    let server = start_with(&dir, None, &[("KEEL_GRPC_HEALTH_BIND", bind.as_str())]);
    let channel = tonic::transport::Channel::from_shared(format!("http://{bind}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC health answers");
    let mut client = HealthClient::new(channel);
    // A check reports from its first round on; on a busy machine that
    // round may still be running when the banner is out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for service in ["", "database", "outbox-relay", "outbox"] {
        loop {
            let status = client
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap_or_else(|e| panic!("{service:?}: {e}"))
                .into_inner()
                .status();
            if status == ServingStatus::Serving {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{service:?} is {status:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let unknown = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(server))
        .await
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
