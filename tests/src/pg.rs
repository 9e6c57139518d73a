//! A throwaway PostgreSQL cluster of a test's own (`pg_createcluster` on a
//! free loopback port), stopped and started at will, dropped at the end.

use std::process::Command;

use crate::RedisServer;
use crate::tls::pg_version;

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway PostgreSQL cluster, dropped (and stopped) at the end.
#[derive(Debug)]
pub struct PgCluster {
    version: String,
    name: String,
    /// Its port.
    pub port: u16,
}

impl PgCluster {
    /// Creates and starts one; `None` when `pg_createcluster` is not
    /// installed.
    pub fn create() -> Option<PgCluster> {
        if Command::new("pg_createcluster")
            .arg("--help")
            .output()
            .is_err()
        {
            return None;
        }
        let cluster = PgCluster {
            version: pg_version(),
            name: format!("keelpg{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            port: RedisServer::free_port(),
        };
        let port = cluster.port.to_string();
        run(
            "pg_createcluster",
            &[
                &cluster.version,
                &cluster.name,
                "-p",
                &port,
                "--",
                "--auth=trust",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    /// Starts it (again).
    pub fn start(&self) {
        run("pg_ctlcluster", &[&self.version, &self.name, "start"]);
    }

    /// Stops it (fast: open connections are cut).
    pub fn stop(&self) {
        run(
            "pg_ctlcluster",
            &[&self.version, &self.name, "stop", "-m", "fast"],
        );
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .output();
    }
}
