//! TLS to every server Keel talks to: the database, Redis and NATS.
//!
//! Each connection speaks TLS when its URL asks for it, in the driver's own
//! words:
//!
//! | server | URL | a private authority |
//! |---|---|---|
//! | PostgreSQL | `sslmode=require` (encrypted, not verified), `verify-ca`, `verify-full` (host name too) | `sslrootcert=/path/ca.pem` |
//! | MySQL / MariaDB | `ssl-mode=REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY` | `ssl-ca=/path/ca.pem` |
//! | Redis | `rediss://` (verified, host name too) | — |
//! | NATS | `tls://` (and any server that requires TLS) | — |
//!
//! [`TlsConfig`] (`KEEL_TLS_CA_FILE`, `KEEL_TLS_CLIENT_CERT_FILE`,
//! `KEEL_TLS_CLIENT_KEY_FILE`) gives a private certificate authority, and a
//! client certificate, to every connection whose URL does not name its own.
//! The database trusts the operating system's authorities besides it;
//! Redis and NATS trust only the file when it is set (their drivers' rule).
//! TLS is the `tls` cargo feature (on by default; rustls, no OpenSSL).
//!
//! A certificate that does not verify (an unknown authority, another host
//! name, an expired certificate) stops [`Keel::connect`](crate::Keel::connect)
//! with an error that names the server and the problem; nothing falls back
//! to plaintext.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The certificate authority and client certificate Keel's connections use
/// when their URLs do not name their own.
///
/// ```
/// let tls = keel::tls::TlsConfig::default().ca_file("/etc/ssl/private-ca.pem");
/// assert!(tls.ca_file.is_some());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// A PEM file of certificate authorities (`KEEL_TLS_CA_FILE`): for the
    /// database (unless the URL has `sslrootcert` / `ssl-ca`; besides the
    /// operating system's), `rediss://` Redis and NATS (instead of the
    /// system's).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate, for servers that ask for one
    /// (`KEEL_TLS_CLIENT_CERT_FILE`; with [`client_key_file`](Self::client_key_file)).
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key (`KEEL_TLS_CLIENT_KEY_FILE`).
    pub client_key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// `KEEL_TLS_CA_FILE`, `KEEL_TLS_CLIENT_CERT_FILE` and
    /// `KEEL_TLS_CLIENT_KEY_FILE` (unset or empty: none).
    pub fn from_env() -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        TlsConfig {
            ca_file: path("KEEL_TLS_CA_FILE"),
            client_cert_file: path("KEEL_TLS_CLIENT_CERT_FILE"),
            client_key_file: path("KEEL_TLS_CLIENT_KEY_FILE"),
        }
    }

    /// Trusts the authorities of PEM file `path` too.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents the client certificate of PEM file `cert`, with the key of
    /// PEM file `key`, to servers that ask for one.
    #[must_use]
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// Whether anything is set.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert_file.is_none() && self.client_key_file.is_none()
    }

    /// The client certificate and key, when both are set.
    #[cfg_attr(
        not(any(feature = "tls", feature = "nats")),
        allow(dead_code, reason = "read by the TLS and NATS connections only")
    )]
    pub(crate) fn client(&self) -> Option<(&Path, &Path)> {
        Some((
            self.client_cert_file.as_deref()?,
            self.client_key_file.as_deref()?,
        ))
    }

    /// Checks that the files exist and hold what they should: a start-up
    /// error naming the file and the problem, never a failure on the first
    /// connection.
    pub fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(config_error(
                "KEEL_TLS_CLIENT_CERT_FILE and KEEL_TLS_CLIENT_KEY_FILE go together: set both or neither"
                    .to_owned(),
            ));
        }
        #[cfg(feature = "tls")]
        {
            if let Some(ca) = &self.ca_file {
                pem::certificates("KEEL_TLS_CA_FILE", ca)?;
            }
            if let Some((cert, key)) = self.client() {
                pem::certificates("KEEL_TLS_CLIENT_CERT_FILE", cert)?;
                pem::private_key("KEEL_TLS_CLIENT_KEY_FILE", key)?;
            }
            Ok(())
        }
        #[cfg(not(feature = "tls"))]
        Err(config_error(
            "KEEL_TLS_* needs keel's `tls` cargo feature, which this build does not have"
                .to_owned(),
        ))
    }
}

fn config_error(message: String) -> Error {
    Error::invalid_argument("configuration", message)
}

/// Whether a database URL asks for TLS (`sslmode` / `ssl-mode` other than
/// `disable` / `prefer`, which work without it).
pub(crate) fn database_url_wants_tls(url: &str) -> bool {
    query_pairs(url).any(|(key, value)| {
        matches!(key, "sslmode" | "ssl-mode")
            && !matches!(
                value.to_ascii_lowercase().as_str(),
                "disable" | "disabled" | "prefer" | "preferred" | "allow"
            )
    })
}

/// The `key=value` pairs of a URL's query (not decoded: only names and
/// plain values are looked at).
fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    url.split_once('?')
        .map_or("", |(_, query)| query.split('#').next().unwrap_or(""))
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(key, _)| !key.is_empty())
}

/// Whether the URL's query names any of `keys`.
#[cfg(feature = "tls")]
fn names(url: &str, keys: &[&str]) -> bool {
    query_pairs(url).any(|(key, _)| keys.contains(&key))
}

/// `scheme host:port` of a URL, for messages (no credentials, no path).
pub(crate) fn server_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let kind = match scheme {
        "postgres" | "postgresql" => "PostgreSQL",
        "mysql" | "mariadb" => "MySQL",
        "redis" | "rediss" => "Redis",
        "nats" | "tls" => "NATS",
        other => other,
    };
    format!("{kind} at {host}")
}

/// A failure to connect to `server`: its cause, and which server it was.
#[derive(Debug)]
struct AtServer {
    server: String,
    cause: Option<crate::BoxError>,
}

impl std::fmt::Display for AtServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Some(cause) => write!(
                f,
                "{}: {}",
                self.server,
                crate::health::scrub(&cause.to_string())
            ),
            None => f.write_str(&self.server),
        }
    }
}

impl std::error::Error for AtServer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// The error of a failed first connection to the database at `url`: a
/// TLS problem in words (`database TLS handshake failed`), any other
/// unreachable database with the server named in its cause.
pub(crate) fn connect_error(url: &str, err: Error) -> Error {
    let server = server_of(url);
    if let Some(problem) = std::error::Error::source(&err).and_then(problem) {
        return Error::Unavailable {
            reason: "database TLS handshake failed",
            source: Some(Box::new(AtServer {
                server,
                cause: Some(problem.into()),
            })),
        };
    }
    // A server that accepts TLS only refuses a plaintext login as it
    // refuses a wrong user (SQLSTATE 28000): say so when the URL turned
    // TLS off.
    let refused_login = std::error::Error::source(&err)
        .and_then(sqlstate)
        .is_some_and(|code| code == "28000");
    let hint = (refused_login && database_url_disables_tls(url)).then_some(
        "; the URL turns TLS off (sslmode / ssl-mode), and a server that accepts TLS \
         connections only refuses the others this way",
    );
    match err {
        // The pool reports a refused connection as an acquire timeout.
        Error::Unavailable { source, .. } => Error::Unavailable {
            reason: "database unreachable",
            source: Some(Box::new(AtServer {
                server,
                cause: match (source, hint) {
                    (Some(cause), Some(hint)) => Some(format!("{cause}{hint}").into()),
                    (cause, _) => cause,
                },
            })),
        },
        other => other,
    }
}

/// Whether a database URL turns TLS off.
fn database_url_disables_tls(url: &str) -> bool {
    query_pairs(url).any(|(key, value)| {
        matches!(key, "sslmode" | "ssl-mode")
            && matches!(value.to_ascii_lowercase().as_str(), "disable" | "disabled")
    })
}

/// The SQLSTATE of the database error in `err`'s causes.
fn sqlstate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(sea_orm::RuntimeErr::SqlxError(sqlx)) = e.downcast_ref::<sea_orm::RuntimeErr>()
            && let Some(db) = sqlx.as_database_error()
        {
            return db.code().map(|c| c.into_owned());
        }
        cause = e.source();
    }
    None
}

/// At start-up, each TLS server besides the database that Keel will use
/// (the Redis tier, the event sink): one whose certificate does not verify
/// is an error naming it and the problem; one that only cannot be reached
/// now is left to its own retries (the cache fails open, the outbox waits).
pub(crate) async fn check_servers(config: &crate::KeelConfig) -> Result<()> {
    #[cfg(feature = "redis")]
    {
        let mut urls: Vec<&str> = config.cache.redis_url.iter().map(String::as_str).collect();
        if let crate::outbox::SinkKind::Redis { url, .. } = &config.events.sink {
            urls.push(url);
        }
        urls.dedup();
        for url in urls {
            check_redis(url, &config.tls).await?;
        }
    }
    #[cfg(feature = "nats")]
    if let crate::outbox::SinkKind::Nats { url, .. } = &config.events.sink {
        check_nats(url, &config.tls).await?;
    }
    let _ = config;
    Ok(())
}

/// How long a start-up check waits for a server.
#[cfg(any(feature = "redis", feature = "nats"))]
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(feature = "redis")]
async fn check_redis(url: &str, tls: &TlsConfig) -> Result<()> {
    let server = server_of(url);
    let unusable = |reason: &'static str, cause: String| Error::Unavailable {
        reason,
        source: Some(Box::new(AtServer {
            server: server.clone(),
            cause: Some(cause.into()),
        })),
    };
    let client =
        redis_client(url, tls).map_err(|e| unusable("Redis cannot be set up", e.to_string()))?;
    let connected = tokio::time::timeout(CHECK_TIMEOUT, async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await
    })
    .await;
    match connected {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            if let Some(problem) = problem(&err) {
                return Err(unusable("Redis TLS handshake failed", problem));
            }
            // Reached, then hung up on: not a server that is down.
            let dropped =
                err.is_connection_dropped() && !err.is_connection_refusal() && !err.is_timeout();
            if dropped && url.starts_with("redis://") {
                return Err(unusable(
                    "Redis refused a plaintext connection",
                    "the server closed the connection before answering; if it accepts TLS only, \
                     use a rediss:// URL"
                        .to_owned(),
                ));
            }
            tracing::warn!(server = %server, error = %crate::health::scrub(&err.to_string()), "Redis cannot be reached yet; starting anyway (the cache fails open)");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(server = %server, "Redis did not answer in time; starting anyway (the cache fails open)");
            Ok(())
        }
    }
}

#[cfg(feature = "nats")]
async fn check_nats(url: &str, tls: &TlsConfig) -> Result<()> {
    let server = server_of(url);
    let connected = tokio::time::timeout(
        CHECK_TIMEOUT,
        nats_options(tls)
            .connection_timeout(CHECK_TIMEOUT)
            .connect(url),
    )
    .await;
    match connected {
        Ok(Ok(client)) => {
            drop(client);
            Ok(())
        }
        Ok(Err(err)) => {
            let tls_failure = matches!(err.kind(), async_nats::ConnectErrorKind::Tls);
            match problem(&err) {
                Some(problem) => Err(nats_tls_error(&server, problem)),
                None if tls_failure => Err(nats_tls_error(&server, err.to_string())),
                None => {
                    tracing::warn!(server = %server, error = %err, "NATS cannot be reached yet; starting anyway (the outbox keeps the events)");
                    Ok(())
                }
            }
        }
        Err(_) => {
            tracing::warn!(server = %server, "NATS did not answer in time; starting anyway (the outbox keeps the events)");
            Ok(())
        }
    }
}

#[cfg(feature = "nats")]
fn nats_tls_error(server: &str, problem: String) -> Error {
    Error::Unavailable {
        reason: "NATS TLS handshake failed",
        source: Some(Box::new(AtServer {
            server: server.to_owned(),
            cause: Some(problem.into()),
        })),
    }
}

/// What went wrong in a TLS handshake, in words, if `err` (or a cause of
/// it) is a TLS error; `None` for any other failure.
pub(crate) fn problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    #[cfg(feature = "tls")]
    {
        rustls_error(err, 0).map(describe)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = err;
        None
    }
}

/// The rustls error in `err` or its causes. The drivers wrap it in ways
/// `source()` does not always follow: an `io::Error`'s payload is its
/// `get_ref`, redis-rs keeps its cause as an `Arc<dyn Error>`, sea-orm its
/// sqlx error inside a `RuntimeErr` without a source.
#[cfg(feature = "tls")]
fn rustls_error<'e>(
    err: &'e (dyn std::error::Error + 'static),
    depth: usize,
) -> Option<&'e rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    if depth > 16 {
        return None;
    }
    let inner: Option<&'e (dyn std::error::Error + 'static)> =
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io.get_ref()
                .map(|e| e as &(dyn std::error::Error + 'static))
        } else if let Some(shared) = err.downcast_ref::<Shared>() {
            Some(&**shared as &(dyn std::error::Error + 'static))
        } else if let Some(sea_orm::RuntimeErr::SqlxError(sqlx)) =
            err.downcast_ref::<sea_orm::RuntimeErr>()
        {
            Some(&**sqlx as &(dyn std::error::Error + 'static))
        } else {
            None
        };
    inner
        .and_then(|e| rustls_error(e, depth + 1))
        .or_else(|| err.source().and_then(|e| rustls_error(e, depth + 1)))
}

#[cfg(feature = "tls")]
fn describe(err: &rustls::Error) -> String {
    use rustls::{CertificateError, Error as E};
    let hint =
        "trust its authority with KEEL_TLS_CA_FILE, or the database URL's sslrootcert / ssl-ca";
    match err {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("the server's certificate is not signed by a trusted authority ({hint})")
        }
        E::InvalidCertificate(CertificateError::NotValidForName)
        | E::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for this host name".to_owned()
        }
        E::InvalidCertificate(CertificateError::Expired)
        | E::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the server's certificate has expired".to_owned()
        }
        E::InvalidCertificate(CertificateError::NotValidYet)
        | E::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet".to_owned()
        }
        E::InvalidCertificate(other) => format!("the server's certificate is invalid: {other:?}"),
        other => format!("the TLS handshake failed: {other}"),
    }
}

/// The process's rustls crypto provider (ring), installed once: the Redis
/// client asks for the process default.
#[cfg(feature = "tls")]
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another provider installed first by the application is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The database's TLS settings from `tls`, where the URL names none of its
/// own (PostgreSQL `sslrootcert` / `sslcert`, MySQL `ssl-ca` / `ssl-cert`).
#[cfg(feature = "tls")]
pub(crate) fn apply_to_database(options: &mut sea_orm::ConnectOptions, url: &str, tls: &TlsConfig) {
    let ca = tls
        .ca_file
        .clone()
        .filter(|_| !names(url, &["sslrootcert", "ssl-root-cert", "ssl-ca", "sslca"]));
    let client = tls
        .client()
        .map(|(c, k)| (c.to_path_buf(), k.to_path_buf()))
        .filter(|_| !names(url, &["sslcert", "ssl-cert"]));
    if ca.is_none() && client.is_none() {
        return;
    }
    #[cfg(feature = "postgres")]
    {
        let (ca, client) = (ca.clone(), client.clone());
        options.map_sqlx_postgres_opts(move |mut o| {
            if let Some(ca) = &ca {
                o = o.ssl_root_cert(ca);
            }
            if let Some((cert, key)) = &client {
                o = o.ssl_client_cert(cert).ssl_client_key(key);
            }
            o
        });
    }
    #[cfg(feature = "mysql")]
    options.map_sqlx_mysql_opts(move |mut o| {
        if let Some(ca) = &ca {
            o = o.ssl_ca(ca);
        }
        if let Some((cert, key)) = &client {
            o = o.ssl_client_cert(cert).ssl_client_key(key);
        }
        o
    });
    #[cfg(not(any(feature = "postgres", feature = "mysql")))]
    let _ = (options, ca, client);
}

/// A Redis client for `url`: a `rediss://` one trusts `tls`'s authority
/// and presents its client certificate.
#[cfg(feature = "redis")]
pub(crate) fn redis_client(url: &str, tls: &TlsConfig) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "tls")]
    if url.starts_with("rediss://") && !tls.is_empty() {
        install_crypto_provider();
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read a TLS file",
                    format!("{}: {e}", path.display()),
                ))
            })
        };
        let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
        let client_tls = match tls.client() {
            Some((cert, key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            None => None,
        };
        return redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        );
    }
    #[cfg(feature = "tls")]
    if url.starts_with("rediss://") {
        install_crypto_provider();
    }
    let _ = tls;
    redis::Client::open(url)
}

/// NATS connection options with `tls`'s authority and client certificate:
/// used by a `tls://` URL, and by any server that requires TLS.
#[cfg(feature = "nats")]
pub(crate) fn nats_options(tls: &TlsConfig) -> async_nats::ConnectOptions {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = tls.client() {
        options = options.add_client_certificate(cert.to_path_buf(), key.to_path_buf());
    }
    options
}

#[cfg(feature = "tls")]
mod pem {
    //! What a PEM file holds, checked at start-up.

    use std::path::Path;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::config_error;
    use crate::Result;

    fn unreadable(setting: &str, path: &Path, why: impl std::fmt::Display) -> crate::Error {
        config_error(format!("{setting} {}: {why}", path.display()))
    }

    /// The certificates of a PEM file: at least one, each parsed.
    pub(super) fn certificates(setting: &str, path: &Path) -> Result<usize> {
        let bytes = std::fs::read(path).map_err(|e| unreadable(setting, path, e))?;
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            cert.map_err(|e| unreadable(setting, path, format!("not a PEM certificate ({e})")))?;
            count += 1;
        }
        if count == 0 {
            return Err(unreadable(setting, path, "holds no PEM certificate"));
        }
        Ok(count)
    }

    /// The private key of a PEM file.
    pub(super) fn private_key(setting: &str, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| unreadable(setting, path, e))?;
        PrivateKeyDer::from_pem_slice(&bytes)
            .map(drop)
            .map_err(|e| unreadable(setting, path, format!("holds no PEM private key ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_database_urls_ask_for_tls() {
        assert!(database_url_wants_tls(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem"
        ));
        assert!(database_url_wants_tls("mysql://u@h/db?ssl-mode=REQUIRED"));
        assert!(!database_url_wants_tls("postgres://u@h/db?sslmode=disable"));
        assert!(!database_url_wants_tls("postgres://u@h/db?sslmode=prefer"));
        assert!(!database_url_wants_tls("postgres://u@h/db"));
    }

    #[test]
    fn a_server_is_named_without_credentials() {
        assert_eq!(
            server_of("postgres://app:hunter2@db.internal:5432/shop?sslmode=require"),
            "PostgreSQL at db.internal:5432"
        );
        assert_eq!(
            server_of("rediss://:pw@cache:6380/0"),
            "Redis at cache:6380"
        );
        assert_eq!(server_of("tls://nats:4222"), "NATS at nats:4222");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let half = TlsConfig {
            client_cert_file: Some("/c.pem".into()),
            ..TlsConfig::default()
        };
        assert!(
            half.check()
                .unwrap_err()
                .to_string()
                .contains("go together")
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn files_that_are_missing_or_not_pem_are_named() {
        let missing = TlsConfig::default().ca_file("/nonexistent/ca.pem");
        let err = missing.check().unwrap_err().to_string();
        assert!(
            err.contains("KEEL_TLS_CA_FILE /nonexistent/ca.pem"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("keel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = TlsConfig::default()
            .ca_file(&junk)
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
