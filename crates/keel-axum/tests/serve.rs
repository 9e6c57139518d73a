//! `keel_axum::serve` over real TCP: slow and idle clients meet timeouts, a
//! slow handler answers 503 in the envelope, connections are capped, and a
//! shutdown is bounded by the drain timeout even with a client that never
//! finishes its request.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use keel_axum::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

fn app() -> Router {
    Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "slow"
            }),
        )
        .route(
            "/echo",
            post(|body: Result<keel_axum::JsonBody<serde_json::Value>, keel_axum::ApiError>| async move {
                match body {
                    Ok(keel_axum::JsonBody(v)) => Ok(v.to_string()),
                    Err(e) => Err(e),
                }
            }),
        )
}

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: ServeConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(keel_axum::serve(
        listener,
        app(),
        async move {
            let _ = stopped.await;
        },
        config,
    ));
    Running {
        addr,
        stop: Some(stop),
        served,
    }
}

/// Reads until the server closes the connection or `within` passes; what
/// came, and whether it was closed.
async fn read_all(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                // A whole response with a body length we can see is enough.
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n")
                    && let Some(len) = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok())
                    && body.len() >= len
                {
                    return (text.into_owned(), false);
                }
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let server = start(ServeConfig::new().header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_all(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection was closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_refused() {
    let server = start(ServeConfig::new().body_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let started = Instant::now();
    let (text, _) = read_all(&mut stream, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let status = text.lines().next().unwrap_or_default().to_owned();
    assert!(
        status.contains(" 400 ") || status.contains(" 408 "),
        "{text}"
    );
    assert!(text.contains("\"error\""), "the envelope: {text}");
}

#[tokio::test]
async fn a_request_that_takes_too_long_answers_503_in_the_envelope() {
    let server = start(ServeConfig::new().request_timeout(Duration::from_millis(300))).await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_all(&mut stream, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"UNAVAILABLE\""), "{text}");
    // The server goes on.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_all(&mut stream, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn connections_are_capped() {
    let server = start(
        ServeConfig::new()
            .max_connections(2)
            .request_timeout(Duration::from_millis(800)),
    )
    .await;
    // Two connections busy with slow requests take every place.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third is served only once one of them is done.
    let started = Instant::now();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third
        .write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_all(&mut third, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for a place: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_drain_timeout_whatever_the_clients_do() {
    let mut server = start(
        ServeConfig::new()
            .drain_timeout(Duration::from_millis(400))
            .body_timeout(Duration::from_secs(60))
            .header_read_timeout(Duration::from_secs(60)),
    )
    .await;
    // A client in the middle of its body, and one idle after a request.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_all(&mut idle, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.served)
        .await
        .expect("serve returned within its drain timeout")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // No new connection is taken once it has stopped.
    assert!(TcpStream::connect(server.addr).await.is_err());
    drop(slow);
}
