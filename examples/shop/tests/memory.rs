//! The in-process cache's byte budget bounds the memory it names, measured
//! as users would: the resident size of the `shop` binary before and after
//! an anonymous caller reads 3,000 distinct list pages of 100 products, a
//! caller with a token 1,000 more (private fields shown), and every
//! product is read by id by both. Whatever the mix, the process grows by
//! at most the budget plus 25% plus 16 MiB (the allocator's own
//! bookkeeping, the pools and buffers a first load warms up).
//!
//! One process at a time, backends one after the other, so that nothing
//! else in this binary shares what is measured.

mod common;

use std::time::Duration;

use common::{command, sigterm_and_wait, start_with};
use keel_tests::{Backend, TestDb};

const TOKENS: &str = "staff:memory-token-memory-token-memory-tok";
const TOKEN: &str = "memory-token-memory-token-memory-tok";
const PRODUCTS: usize = 3_000;
const BUDGET: u64 = 64 << 20;

/// `VmRSS` (now) or `VmHWM` (the peak) of process `pid`, in bytes.
fn resident(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kib << 10
}

/// A gauge's value in a Prometheus text.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// GETs every path of `paths` (with the token when its flag says),
/// four at a time; each must answer 200. Returns the bytes received.
async fn read_all(base: &str, paths: Vec<(String, bool)>) -> usize {
    let client = reqwest::Client::new();
    let paths = std::sync::Arc::new(std::sync::Mutex::new(paths));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, paths, base) = (client.clone(), paths.clone(), base.to_owned());
        workers.push(tokio::spawn(async move {
            let mut received = 0;
            loop {
                let Some((path, with_token)) = paths.lock().unwrap().pop() else {
                    return received;
                };
                let mut request = client.get(format!("{base}{path}"));
                if with_token {
                    request = request.bearer_auth(TOKEN);
                }
                let response = request.send().await.expect("answered");
                assert_eq!(response.status(), 200, "{path}");
                received += response.bytes().await.expect("body").len();
            }
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    total
}

fn measure(backend: Backend) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(TestDb::create(backend));
    let dir = std::env::temp_dir().join(format!("shop-mem-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let env = [("DATABASE_URL", db.url.as_str()), ("RUST_LOG", "warn")];
    let seeded = command(&dir, None, &env)
        .args(["seed", "--products", &PRODUCTS.to_string()])
        .output()
        .expect("shop seed runs");
    assert!(seeded.status.success(), "{seeded:?}");
    let shop = start_with(&dir, Some(TOKENS), &env);
    let pid = shop.child.id();
    let base = shop.url.clone();

    let report = rt.block_on(async {
        // Warm up what a first request of each kind sets up (pools, the
        // allocator's arenas, lazily built statements), then measure.
        let warm = (0..40)
            .flat_map(|i| {
                [
                    (
                        format!("/products?page_size=100&skip={}", i * 7),
                        i % 2 == 0,
                    ),
                    (format!("/products/{}", i + 1), i % 2 == 1),
                ]
            })
            .collect();
        read_all(&base, warm).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = resident(pid, "VmRSS:");

        let mut paths = Vec::new();
        for i in 0..3_000 {
            paths.push((
                format!(
                    "/products?page_size=100&filter=price_cents%20%3E%3D%20{}",
                    100 + i * 3
                ),
                false,
            ));
        }
        for i in 0..1_000 {
            paths.push((
                format!(
                    "/products?page_size=100&order_by=stock&filter=price_cents%20%3E%3D%20{}",
                    101 + i * 9
                ),
                true,
            ));
        }
        for id in 1..=PRODUCTS {
            paths.push((format!("/products/{id}"), false));
            paths.push((format!("/products/{id}"), true));
        }
        // Interleaved, as callers come: a fixed permutation.
        let n = paths.len();
        let mut shuffled: Vec<(usize, (String, bool))> = paths.into_iter().enumerate().collect();
        shuffled.sort_by_key(|(i, _)| (i * 7919) % n);
        let received = read_all(&base, shuffled.into_iter().map(|(_, p)| p).collect()).await;
        let peak = resident(pid, "VmHWM:");
        let after = resident(pid, "VmRSS:");

        // The gauges are set every 5 s.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        let metrics = reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let l1_bytes = gauge(&metrics, "keel_cache_l1_bytes");
        let l1_entries = gauge(&metrics, "keel_cache_l1_entries");
        (before, peak, after, received, l1_bytes, l1_entries)
    });
    let (before, peak, after, received, l1_bytes, l1_entries) = report;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "{}: resident {:.1} MiB before, {:.1} MiB after, peak {:.1} MiB (+{:.1} MiB); \
         {:.1} MiB of JSON served; in-process tier {:.1} MiB in {} entries (budget {} MiB)",
        backend.name(),
        mib(before),
        mib(after),
        mib(peak),
        mib(peak.saturating_sub(before)),
        mib(received as u64),
        l1_bytes / f64::from(1 << 20),
        l1_entries,
        BUDGET >> 20
    );
    let status = sigterm_and_wait(shop);
    assert!(status.success(), "exit status {status}");
    rt.block_on(db.destroy());
    let _ = std::fs::remove_dir_all(&dir);

    // Not vacuous: more was read than the budget holds, and the tier is full.
    assert!(received as u64 > BUDGET, "{received} bytes read");
    assert!(
        l1_bytes > 0.75 * BUDGET as f64 && l1_bytes <= BUDGET as f64,
        "the tier weighs {l1_bytes} bytes"
    );
    let bound = BUDGET + BUDGET / 4 + (16 << 20);
    assert!(
        peak.saturating_sub(before) <= bound,
        "the process grew by {:.1} MiB with a {} MiB budget (at most {:.1} MiB allowed)",
        mib(peak.saturating_sub(before)),
        BUDGET >> 20,
        mib(bound)
    );
}

#[test]
fn the_in_process_cache_grows_the_process_by_its_budget_at_most() {
    let probes = keel_tests::probe_backends();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if probes
            .iter()
            .any(|p| p.backend == backend && p.status.is_ok())
        {
            measure(backend);
        }
    }
}
