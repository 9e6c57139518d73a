//! A writer the outbox fault tests kill: connects with the environment's
//! configuration (`DATABASE_URL`, `KEEL_SERVICE_NAME`, `NATS_URL`,
//! `KEEL_EVENTS_STREAM`, `KEEL_OUTBOX_LEASE_MS`), runs the outbox relay, and creates products one
//! after the other, printing `committed {id}` after each commit, until it
//! is killed. With `RELAY_ONLY=1` it only relays, until nothing is pending.

use std::io::Write;

use keel::lifecycle::Component;
use keel::outbox::{OutboxStats, Relay};
use keel::{Context, Keel};
use keel_tests::entities::product::{self, NewProduct};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keel = Keel::from_env().await.expect("connect");
    let relay = Relay::new(&keel).expect("relay");
    if std::env::var("RELAY_ONLY").is_ok_and(|v| v == "1") {
        // Rows a killed writer claimed wait for their lease to run out.
        let started = std::time::Instant::now();
        loop {
            relay.drain().await.expect("drain");
            let stats = OutboxStats::read(&keel).await.expect("stats");
            if stats.pending == 0 || started.elapsed() > std::time::Duration::from_secs(60) {
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
