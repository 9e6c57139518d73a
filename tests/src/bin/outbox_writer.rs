//! A writer the outbox fault tests kill: connects with the environment's
//! configuration (`DATABASE_URL`, `KEEL_SERVICE_NAME`, `NATS_URL`,
//! `KEEL_EVENTS_STREAM`, `KEEL_OUTBOX_LEASE_MS`), runs the outbox relay, and creates products one
//! after the other, printing `committed {id}` after each commit, until it
//! is killed. With `RELAY_ONLY=1` it only relays, until nothing is pending,
//! and prints how fast. With `FILL=N` it commits N domain events (100 per
//! transaction) without relaying them, and prints how fast: the two make
//! the relay-throughput measurement of docs/benchmarks.md.

use std::io::Write;

use keel::lifecycle::Component;
use keel::outbox::{OutboxStats, Relay};
use keel::{Context, Keel};
use keel_tests::entities::product::{self, NewProduct};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keel = Keel::from_env().await.expect("connect");
    let relay = Relay::new(&keel).expect("relay");
    if let Some(n) = std::env::var("FILL")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        let started = std::time::Instant::now();
        let ctx = Context::actor("filler");
        for batch in 0..n.div_ceil(100) {
            keel.transaction(&ctx, keel::tx::TxOptions::new(), |tx| async move {
                for i in 0..100.min(n - batch * 100) {
                    let n = batch * 100 + i;
                    tx.emit(keel::event::Event::custom(
                        tx.context(),
                        &tx.keel().config().service_name,
                        format!("{}.load.s{}", tx.keel().config().service_name, n % 8),
                        serde_json::json!({ "n": n, "pad": "x".repeat(200) }),
                    ));
                }
                Ok(())
            })
            .await
            .expect("fill");
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "filled {n} events in {secs:.2} s ({:.0}/s)",
            n as f64 / secs
        );
        return;
    }
    if std::env::var("RELAY_ONLY").is_ok_and(|v| v == "1") {
        // Rows a killed writer claimed wait for their lease to run out.
        let started = std::time::Instant::now();
        loop {
            relay.drain().await.expect("drain");
            let stats = OutboxStats::read(&keel).await.expect("stats");
            if stats.pending == 0 || started.elapsed() > std::time::Duration::from_secs(600) {
                let published = relay.stats().published;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "relayed {published} events in {secs:.2} s ({:.0}/s)",
                    published as f64 / secs
                );
                println!("pending {}", stats.pending);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    relay.start().await.expect("relay start");
    let run = std::env::var("RUN").unwrap_or_default();
    let products = keel.service::<product::Entity>();
    let ctx = Context::actor("writer");
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let p = products
            .create(&ctx, NewProduct::new(format!("kill-{run}-{i}"), i))
            .await
            .expect("create");
        writeln!(out, "committed {}", p.id).expect("stdout");
        out.flush().expect("stdout");
    }
}
