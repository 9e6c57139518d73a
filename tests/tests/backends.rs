//! The integration suite: every test body runs on SQLite, PostgreSQL and
//! MySQL/MariaDB, each in a database of its own.
//!
//! `cargo test -p keel-tests --test backends` (or `cargo test --workspace`).
//! Backends without a server are reported as ignored; see `keel_tests` for
//! the environment variables.

mod backends {
    pub(crate) mod audit;
    pub(crate) mod bulk;
    pub(crate) mod cache;
    pub(crate) mod crud;
    pub(crate) mod derive;
    pub(crate) mod errors;
    pub(crate) mod events;
    pub(crate) mod hardening;
    pub(crate) mod outbox;
    pub(crate) mod query;
    pub(crate) mod shapes;
    pub(crate) mod tx;
}

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let probes = keel_tests::probe_backends();
    let mut trials = Vec::new();
    let all = [
        ("audit", backends::audit::CASES),
        ("bulk", backends::bulk::CASES),
        ("cache", backends::cache::CASES),
        ("crud", backends::crud::CASES),
        ("derive", backends::derive::CASES),
        ("errors", backends::errors::CASES),
        ("events", backends::events::CASES),
        ("hardening", backends::hardening::CASES),
        ("outbox", backends::outbox::CASES),
        ("query", backends::query::CASES),
        ("shapes", backends::shapes::CASES),
        ("tx", backends::tx::CASES),
    ];
    for (module, cases) in all {
        for &(name, body) in cases {
            for probe in &probes {
                let backend = probe.backend;
                let trial =
                    Trial::test(format!("{}::{module}::{name}", backend.name()), move || {
                        keel_tests::run(backend, body).map_err(Failed::from)
                    })
                    .with_kind(backend.name())
                    .with_ignored_flag(probe.status.is_err());
                trials.push(trial);
            }
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    for probe in &probes {
        if let Err(why) = &probe.status {
            eprintln!("SKIPPED backend {}: {why}", probe.backend.name());
        }
    }
    conclusion.exit();
}
