//! `shop`: serve the API (the default), `shop worker` (the shipments
//! consumer, with `NATS_URL`), `shop seed --products N`, or `shop migrate`.
//! Configuration comes from the environment: `BIND`, `DATABASE_URL`,
//! `REDIS_URL`, `NATS_URL`, `SHOP_TOKENS`, `SHOP_RATE_LIMIT`,
//! `KEEL_LOG_FORMAT`.

use std::io::IsTerminal;
use std::process::ExitCode;

use keel::telemetry::{LogFormat, init_logging};
use shop::{Config, connect, connect_only, migrate, seed, start};

const USAGE: &str = "usage: shop [serve | worker | seed --products N | migrate [status | down [N]]]

  migrate          apply the pending migrations (serve and worker also do at start-up)
  migrate status   list the migrations, applied or pending
  migrate down [N] roll back the last N applied migrations (default 1)

environment:
  BIND             where to listen (default 127.0.0.1:8080)
  DATABASE_URL     postgres://..., mysql://... or sqlite://... (default sqlite://shop.db?mode=rwc)
  REDIS_URL        the shared cache tier (default: in-process cache only)
  NATS_URL         publish events to NATS JetStream (stream SHOP); `shop worker` consumes them
                   (default: no broker; events feed the in-process bus through the outbox)
  SHOP_TOKENS      name:token,... bearer tokens (32 characters or more); unset: open development mode
  SHOP_ALLOW_OPEN  true: allow the open mode on an address other than loopback
  SHOP_RATE_LIMIT  requests a second per caller (default: no limit)
  KEEL_LOG_FORMAT  text (default) or json
  KEEL_TLS_CA_FILE a PEM file of private authorities for TLS connections
                   (sslmode=verify-full, ssl-mode=VERIFY_IDENTITY, rediss://, tls://)
  OTEL_EXPORTER_OTLP_ENDPOINT  export OpenTelemetry traces to this collector (OTLP;
                   with OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_PROTOCOL)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let format = match LogFormat::from_env() {
        Ok(f) => f,
        Err(e) => return fail(&e.to_string()),
    };
    if let Err(e) = init_logging(format) {
        return fail(&e.to_string());
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve(config).await,
        ["worker"] => match connect(&config, Vec::new()).await {
            Ok(keel) => match shop::shipments::worker(keel).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("worker: {e}")),
            },
            Err(e) => fail(&format!("worker: {e}")),
        },
        ["seed", "--products", n] => match n.parse::<usize>() {
            Ok(n) => seed_products(config, n).await,
            Err(_) => fail(&format!("--products takes a number, got {n:?}\n{USAGE}")),
        },
        ["seed", flag] if flag.starts_with("--products=") => {
            match flag["--products=".len()..].parse::<usize>() {
                Ok(n) => seed_products(config, n).await,
                Err(_) => fail(&format!("--products takes a number, got {flag:?}\n{USAGE}")),
            }
        }
        ["migrate", rest @ ..] => migrate_command(config, rest).await,
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => fail(USAGE),
    }
}

async fn migrate_command(config: Config, args: &[&str]) -> ExitCode {
    let steps = match args {
        [] | ["status"] | ["down"] => 1,
        ["down", n] => match n.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                return fail(&format!(
                    "migrate down takes a number of migrations, got {n:?}"
                ));
            }
        },
        _ => return fail(USAGE),
    };
    let keel = match connect_only(&config, Vec::new()).await {
        Ok(keel) => keel,
        Err(e) => return fail(&format!("migrate: {e}")),
    };
    let outcome = match args {
        [] => migrate::up(keel.db()).await.map(|ran| {
            println!("{ran} migration(s) applied; the schema is up to date");
        }),
        ["status"] => migrate::status(keel.db()).await.map(|all| {
            for (name, applied) in all {
                println!("{}  {name}", if applied { "applied" } else { "pending" });
            }
        }),
        _ => migrate::down(keel.db(), steps).await.map(|names| {
            for name in &names {
                println!("rolled back  {name}");
            }
            if names.is_empty() {
                println!("no migration is applied");
            }
        }),
    };
    let _ = keel.close().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The database's own message: this is the operator's terminal, and
        // a failed migration needs it.
        Err(e) => fail(&format!("migrate: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("shop: {message}");
    ExitCode::FAILURE
}

async fn serve(config: Config) -> ExitCode {
    let redis = config.keel.cache.redis_url.is_some();
    let server = match start(config.clone(), Vec::new()).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let url = server.url();
    println!("shop listening on {url}  (API docs: {url}/docs, health: {url}/health)");
    println!(
        "database: {:?}; cache: {}; events: {}",
        server.keel.backend(),
        if redis {
            "memory + Redis"
        } else {
            "memory only (set REDIS_URL to share it)"
        },
        match &server.keel.config().events.sink {
            keel::outbox::SinkKind::Nats { stream, .. } => format!(
                "outbox -> NATS JetStream stream {stream} (run `shop worker` for shipments)"
            ),
            keel::outbox::SinkKind::Redis { .. } => "outbox -> Redis Streams".to_owned(),
            keel::outbox::SinkKind::Bus =>
                "outbox -> in-process bus (shipments made in process; set NATS_URL for a broker)"
                    .to_owned(),
            _ => "in-process only, no outbox".to_owned(),
        }
    );
    match &config.tokens {
        None => println!(
            "OPEN DEVELOPMENT MODE: SHOP_TOKENS is not set, so anyone may write (as actor \"dev\"). Set SHOP_TOKENS=name:token,... to require bearer tokens."
        ),
        Some(tokens) => println!(
            "bearer tokens required for writes; actors: {}",
            tokens.actors().join(", ")
        ),
    }
    keel::lifecycle::shutdown_signal().await;
    println!("shutting down gracefully");
    server.shutdown().await;
    println!("stopped");
    ExitCode::SUCCESS
}

async fn seed_products(config: Config, n: usize) -> ExitCode {
    let keel = match connect(&config, Vec::new()).await {
        Ok(k) => k,
        Err(e) => return fail(&format!("seed: {e}")),
    };
    match seed::products(&keel, n, std::io::stderr().is_terminal()).await {
        Ok(done) => {
            let secs = done.elapsed.as_secs_f64();
            println!(
                "seeded {} products in {secs:.2} s ({:.0} rows/s)",
                done.rows,
                done.rows as f64 / secs.max(1e-9)
            );
            let _ = keel.close().await;
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("seed: {e}")),
    }
}
