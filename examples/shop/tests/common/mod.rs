//! Running the `shop` binary as a user does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `shop serve`.
pub(crate) struct Running {
    /// The process.
    pub(crate) child: Child,
    /// Its base URL.
    pub(crate) url: String,
    /// What it printed before serving.
    pub(crate) banner: Vec<String>,
}

/// `shop` with a clean environment (no database, Redis or broker from the
/// caller's), in `dir`, with `tokens` and the extra `env`.
pub(crate) fn command(
    dir: &std::path::Path,
    tokens: Option<&str>,
    env: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    command
        .current_dir(dir)
        .env("BIND", "127.0.0.1:0")
        .env("KEEL_DRAIN_DELAY_MS", "100")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("NATS_URL")
        .env_remove("KEEL_EVENTS_SINK")
        .env_remove("SHOP_RATE_LIMIT");
    match tokens {
        Some(t) => command.env("SHOP_TOKENS", t),
        None => command.env_remove("SHOP_TOKENS"),
    };
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Starts `shop serve` in `dir` and reads its banner.
pub(crate) fn start(dir: &std::path::Path, tokens: Option<&str>) -> Running {
    start_with(dir, tokens, &[])
}

/// [`start`] with extra environment variables.
pub(crate) fn start_with(
    dir: &std::path::Path,
    tokens: Option<&str>,
    env: &[(&str, &str)],
) -> Running {
    let mut child = command(dir, tokens, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the shop binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let mut url = None;
    // Logs come first; the banner ends with the line about authentication.
    loop {
        let line = lines.next().expect("a banner line").expect("text");
        if let Some(rest) = line.strip_prefix("shop listening on ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        let last = line.starts_with("OPEN DEVELOPMENT MODE") || line.starts_with("bearer tokens");
        banner.push(line);
        if last {
            break;
        }
    }
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        child,
        url: url.expect("the banner names the URL"),
        banner,
    }
}

/// Sends SIGTERM to `child` and waits (at most 20 s) for it to exit.
pub(crate) fn sigterm_child(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the shop did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`sigterm_child`] for a running server.
pub(crate) fn sigterm_and_wait(mut running: Running) -> std::process::ExitStatus {
    sigterm_child(&mut running.child)
}
