//! Servers that speak TLS only, started by a test on free loopback ports
//! with certificates the test makes (`openssl`): a PostgreSQL cluster
//! (`hostssl` only), a MariaDB instance (`require_secure_transport`), a
//! `redis-server` (`--port 0 --tls-port`) and a `nats-server` (a `tls`
//! block). Each is stopped, and its files removed, when dropped.
//!
//! The server certificate names `localhost` only: a client that dials
//! `127.0.0.1` with host-name verification meets a certificate for another
//! host. A second authority, which signed nothing the servers present,
//! stands for a wrong CA.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisServer;

/// Whether `KEEL_TEST_REQUIRE` asks for `what` (or `all`).
fn required(what: &str) -> bool {
    std::env::var("KEEL_TEST_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|r| matches!(r.trim(), "all" | "tls") || r.trim() == what)
}

/// `None`, or a failure when the suite is told every server is required.
fn missing<T>(what: &str, why: &str) -> Option<T> {
    assert!(
        !required(what),
        "KEEL_TEST_REQUIRE asks for {what}, which cannot run here: {why}"
    );
    eprintln!("SKIPPED: {what}: {why}");
    None
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn wait_for_port(port: u16, what: &str, within: Duration) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < within, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Certificates made for one test: an authority, a server certificate for
/// `localhost` it signed, a client certificate it signed, and an unrelated
/// authority.
#[derive(Debug)]
pub struct Certs {
    /// Where they are.
    pub dir: PathBuf,
    /// The authority that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// An authority that signed nothing here.
    pub other_ca: PathBuf,
    /// The server's certificate (`localhost` only).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate (`keel-client`).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl Certs {
    /// Makes them with `openssl`; `None` when it is not installed.
    pub fn generate() -> Option<Certs> {
        let dir = std::env::temp_dir().join(format!("keel-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a directory for certificates");
        let p = |name: &str| dir.join(name);
        let certs = Certs {
            ca: p("ca.pem"),
            other_ca: p("other-ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            dir: dir.clone(),
        };
        let path = |name: &str| p(name).to_string_lossy().into_owned();
        let authority = |name: &str, cn: &str| {
            run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "30",
                    "-keyout",
                    &path(&format!("{name}.key")),
                    "-out",
                    &path(&format!("{name}.pem")),
                    "-subj",
                    &format!("/CN={cn}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            )
        };
        let signed = |name: &str, cn: &str, extensions: &str| -> Result<(), String> {
            std::fs::write(p(&format!("{name}.ext")), extensions).map_err(|e| e.to_string())?;
            run(
                "openssl",
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &path(&format!("{name}.key")),
                    "-out",
                    &path(&format!("{name}.csr")),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            )?;
            run(
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    &path(&format!("{name}.csr")),
                    "-CA",
                    &path("ca.pem"),
                    "-CAkey",
                    &path("ca.key"),
                    "-CAcreateserial",
                    "-days",
                    "30",
                    "-out",
                    &path(&format!("{name}.pem")),
                    "-extfile",
                    &path(&format!("{name}.ext")),
                ],
            )
        };
        let made = authority("ca", "Keel Test CA")
            .and_then(|()| authority("other-ca", "Somebody Else's CA"))
            .and_then(|()| {
                signed(
                    "server",
                    "localhost",
                    "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
                     keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
                )
            })
            .and_then(|()| {
                signed(
                    "client",
                    "keel-client",
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                     extendedKeyUsage=clientAuth\n",
                )
            });
        match made {
            Ok(()) => Some(certs),
            Err(why) => {
                let _ = std::fs::remove_dir_all(&dir);
                missing("openssl", &why)
            }
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PostgreSQL major version `pg_createcluster` makes clusters of.
pub fn pg_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| "15".to_owned())
}

/// A PostgreSQL cluster that accepts TLS connections only (`hostssl`).
#[derive(Debug)]
pub struct TlsPostgres {
    /// Its port.
    pub port: u16,
    version: String,
    name: String,
}

impl TlsPostgres {
    /// Creates and starts it (`pg_createcluster`, run as root: the server
    /// runs as `postgres`, which must own its key).
    pub fn start(certs: &Certs) -> Option<TlsPostgres> {
        let cluster = TlsPostgres {
            port: RedisServer::free_port(),
            version: pg_version(),
            name: format!(
                "keeltls{}",
                &uuid::Uuid::new_v4().simple().to_string()[..10]
            ),
        };
        let port = cluster.port.to_string();
        if let Err(why) = run(
            "pg_createcluster",
            &[
                &cluster.version,
                &cluster.name,
                "-p",
                &port,
                "--",
                "--auth=trust",
            ],
        ) {
            return missing("postgres", &why);
        }
        let data = PathBuf::from(format!(
            "/var/lib/postgresql/{}/{}",
            cluster.version, cluster.name
        ));
        let conf = PathBuf::from(format!(
            "/etc/postgresql/{}/{}",
            cluster.version, cluster.name
        ));
        for (from, to) in [
            (&certs.server_cert, "server.pem"),
            (&certs.server_key, "server.key"),
        ] {
            std::fs::copy(from, data.join(to)).expect("copy a certificate");
        }
        run(
            "chown",
            &[
                "postgres:postgres",
                &data.join("server.pem").to_string_lossy(),
                &data.join("server.key").to_string_lossy(),
            ],
        )
        .expect("chown the certificate");
        run(
            "chmod",
            &["600", &data.join("server.key").to_string_lossy()],
        )
        .expect("chmod the key");
        let mut settings =
            std::fs::read_to_string(conf.join("postgresql.conf")).expect("postgresql.conf");
        settings.push_str(&format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nlisten_addresses = '127.0.0.1'\n",
            data.join("server.pem").display(),
            data.join("server.key").display()
        ));
        std::fs::write(conf.join("postgresql.conf"), settings).expect("postgresql.conf");
        std::fs::write(
            conf.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("pg_hba.conf");
        run("pg_ctlcluster", &[&cluster.version, &cluster.name, "start"])
            .expect("start the cluster");
        wait_for_port(cluster.port, "PostgreSQL", Duration::from_secs(20));
        Some(cluster)
    }

    /// A URL to it through `host`, with these query parameters.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .output();
    }
}

/// A MariaDB instance that refuses insecure transport
/// (`require_secure_transport`), in a data directory of its own.
#[derive(Debug)]
pub struct TlsMariaDb {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl TlsMariaDb {
    /// Initialises its data directory (`mariadb-install-db`) and starts
    /// `mariadbd` (as root: its files are the test's).
    pub fn start(certs: &Certs) -> Option<TlsMariaDb> {
        let dir =
            std::env::temp_dir().join(format!("keel-mariadb-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        if let Err(why) = run(
            "mariadb-install-db",
            &[
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
        ) {
            let _ = std::fs::remove_dir_all(&dir);
            return missing("mysql", &why);
        }
        let port = RedisServer::free_port();
        let arg = |name: &str, value: &Path| format!("--{name}={}", value.display());
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(arg("datadir", &data))
            .arg(arg("socket", &dir.join("mysqld.sock")))
            .arg(arg("pid-file", &dir.join("mysqld.pid")))
            .arg(arg("log-error", &dir.join("error.log")))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--port={port}"))
            .args([
                "--innodb-buffer-pool-size=16M",
                "--require-secure-transport=ON",
            ])
            .arg(arg("ssl-cert", &certs.server_cert))
            .arg(arg("ssl-key", &certs.server_key))
            .arg(arg("ssl-ca", &certs.ca))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return missing("mysql", &format!("mariadbd: {e}"));
            }
        };
        let server = TlsMariaDb {
            port,
            dir,
            child: Some(child),
        };
        wait_for_port(port, "MariaDB", Duration::from_secs(30));
        Some(server)
    }

    /// A URL to its `mysql` database through `host`, with these parameters.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("mysql://root@{host}:{}/mysql?{query}", self.port)
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` that speaks TLS only (`--port 0 --tls-port`).
#[derive(Debug)]
pub struct TlsRedis {
    /// Its TLS port.
    pub port: u16,
    child: Option<Child>,
}

impl TlsRedis {
    /// Starts it; with `client_auth`, it asks every client for a
    /// certificate its authority signed.
    pub fn start(certs: &Certs, client_auth: bool) -> Option<TlsRedis> {
        let port = RedisServer::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(&certs.server_cert)
            .arg("--tls-key-file")
            .arg(&certs.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&certs.ca)
            .args(["--tls-auth-clients", if client_auth { "yes" } else { "no" }])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                wait_for_port(port, "redis-server", Duration::from_secs(5));
                Some(TlsRedis {
                    port,
                    child: Some(child),
                })
            }
            Err(e) => missing("redis", &format!("redis-server: {e}")),
        }
    }

    /// `scheme://host:port`.
    pub fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `nats-server` with JetStream that requires TLS of every client.
#[derive(Debug)]
pub struct TlsNats {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl TlsNats {
    /// Starts it with a configuration file of its own.
    pub fn start(certs: &Certs) -> Option<TlsNats> {
        let dir =
            std::env::temp_dir().join(format!("keel-nats-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a directory for nats-server");
        let port = RedisServer::free_port();
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\n\
                 tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n",
                dir.join("store").display().to_string(),
                certs.server_cert.display().to_string(),
                certs.server_key.display().to_string()
            ),
        )
        .expect("nats.conf");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                wait_for_port(port, "nats-server", Duration::from_secs(10));
                Some(TlsNats {
                    port,
                    dir,
                    child: Some(child),
                })
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                missing("nats", &format!("nats-server: {e}"))
            }
        }
    }

    /// `scheme://host:port`.
    pub fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}", self.port)
    }
}

impl Drop for TlsNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
