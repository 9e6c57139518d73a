//! Configuration: from the environment or a builder.

use std::time::Duration;

use crate::env::parse as env_parse;
use crate::query::{PageConfig, QueryLimits};
use crate::{Error, Result};

/// The database used when `DATABASE_URL` is not set: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://keel.db?mode=rwc";

/// The service name used when `KEEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "app";

/// The fewest bytes a page-token secret has (an HMAC-SHA256 key of
/// SHA-256's own size).
pub const MIN_SECRET_LENGTH: usize = 32;

/// Everything [`Keel`](crate::Keel) needs to start.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeelConfig {
    /// `postgres://…`, `mysql://…` (MySQL and MariaDB) or `sqlite://…`.
    pub database_url: String,
    /// The name of the service, the first part of every event type
    /// (`shop.product.created`) and the `source` of every event (default `app`).
    pub service_name: String,
    /// Connection pool settings.
    pub pool: PoolConfig,
    /// The cache: its Redis tier, key prefix, timeouts.
    pub cache: crate::cache::CacheConfig,
    /// Page-size bounds of `list`.
    pub page: PageConfig,
    /// Bounds on filter size.
    pub limits: QueryLimits,
    /// The key page tokens are signed with: at least
    /// [`MIN_SECRET_LENGTH`] bytes. When unset, a random key is made at
    /// start-up: tokens then work only on the instance that issued them,
    /// and only until it restarts; with a shared Redis tier (several
    /// instances serving each other's cached pages) it must be set, to the
    /// same value on every instance, or [`Keel::connect`](crate::Keel::connect)
    /// refuses to start.
    pub page_token_secret: Option<Secret>,
    /// How many times a write is retried after a lost race (serialization
    /// failure, deadlock, busy database) before `ABORTED` is returned.
    pub write_retries: usize,
    /// Whether [`Keel::connect`](crate::Keel::connect) creates Keel's own
    /// tables (the audit log) when they are missing (default on; turn it off
    /// where migrations run separately, and call [`Keel::migrate`](crate::Keel::migrate) there).
    pub auto_migrate: bool,
    /// Where events go: the transactional outbox's sink and relay
    /// (default: no sink, no outbox).
    pub events: crate::outbox::EventsConfig,
    /// The certificate authority and client certificate of the TLS
    /// connections whose URLs do not name their own (see [`crate::tls`]).
    pub tls: crate::tls::TlsConfig,
}

/// Connection pool settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most connections open at once (default 10).
    pub max_connections: u32,
    /// Connections kept open when idle (default 1).
    pub min_connections: u32,
    /// How long a call waits for a free connection before `UNAVAILABLE` (default 5 s).
    pub acquire_timeout: Duration,
    /// How long an idle connection is kept (default 10 min; `None` keeps it forever).
    pub idle_timeout: Option<Duration>,
    /// Whether to ping every connection taken from the pool (default off:
    /// one extra round trip per query, 7-15% of throughput; dead connections
    /// are caught by the database health check and the idle timeout instead).
    pub test_before_acquire: bool,
    /// The longest a statement may run on the server (default 30 s; `None`:
    /// no limit): PostgreSQL's `statement_timeout`, MariaDB's
    /// `max_statement_time`, MySQL's `max_execution_time` (reads only), set
    /// on every connection. A statement cut off is `DEADLINE_EXCEEDED`.
    /// SQLite has no such limit: there only the caller's deadline bounds the
    /// wait.
    pub statement_timeout: Option<Duration>,
    /// Connections lists and counts may not take (default a quarter of the
    /// pool, at least 1 when the pool has 2 or more): however many
    /// expensive queries run at once, reads by key, writes and health
    /// checks always find a connection. A list or count waits for its turn
    /// (within the acquire timeout and the caller's deadline), then is
    /// `UNAVAILABLE`.
    pub reserved_connections: Option<u32>,
}

impl PoolConfig {
    /// How many lists and counts may read the database at once.
    pub fn query_permits(&self) -> u32 {
        let reserved = self.reserved_connections.unwrap_or_else(|| {
            if self.max_connections >= 2 {
                (self.max_connections / 4).max(1)
            } else {
                0
            }
        });
        self.max_connections.saturating_sub(reserved).max(1)
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            test_before_acquire: false,
            statement_timeout: Some(Duration::from_secs(30)),
            reserved_connections: None,
        }
    }
}

/// A secret value whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the bytes of a secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl KeelConfig {
    /// Defaults for `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        KeelConfig {
            database_url: database_url.into(),
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            pool: PoolConfig::default(),
            cache: crate::cache::CacheConfig::default(),
            page: PageConfig::default(),
            limits: QueryLimits::default(),
            page_token_secret: None,
            write_retries: 3,
            auto_migrate: true,
            events: crate::outbox::EventsConfig::default(),
            tls: crate::tls::TlsConfig::default(),
        }
    }

    /// Reads the configuration from the environment.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `DATABASE_URL` | database to connect to | `sqlite://keel.db?mode=rwc` |
    /// | `KEEL_SERVICE_NAME` | first part of event types | `app` |
    /// | `REDIS_URL` | the shared cache tier; unset: in-process only | unset |
    /// | `KEEL_CACHE_PREFIX` / `KEEL_CACHE_TIMEOUT_MS` | cache key prefix, Redis call timeout | `keel` / 50 |
    /// | `KEEL_CACHE` | `off`: reads bypass the cache (writes still invalidate) | `on` |
    /// | `KEEL_DB_MAX_CONNECTIONS` | pool size | 10 |
    /// | `KEEL_DB_MIN_CONNECTIONS` | idle connections kept | 1 |
    /// | `KEEL_DB_ACQUIRE_TIMEOUT_MS` | wait for a connection | 5000 |
    /// | `KEEL_DB_IDLE_TIMEOUT_SECS` | idle connection lifetime, 0 = forever | 600 |
    /// | `KEEL_DB_TEST_BEFORE_ACQUIRE` | ping on every acquire (`true`/`false`) | false |
    /// | `KEEL_DB_STATEMENT_TIMEOUT_MS` | longest statement on the server, 0 = none | 30000 |
    /// | `KEEL_DB_RESERVED_CONNECTIONS` | connections lists and counts may not take | a quarter of the pool |
    /// | `KEEL_PAGE_SIZE_DEFAULT` / `KEEL_PAGE_SIZE_MAX` | list page sizes | 20 / 100 |
    /// | `KEEL_PAGE_TOKEN_SECRET` | page token signing key | random per process |
    /// | `KEEL_AUTO_MIGRATE` | create Keel's own tables on connect (`true`/`false`) | true |
    /// | `KEEL_EVENTS_SINK`, `NATS_URL`, … | the outbox's sink: see [`EventsConfig::from_env`](crate::outbox::EventsConfig::from_env) | no sink |
    /// | `KEEL_TLS_CA_FILE` | a PEM file of authorities for TLS connections whose URLs name none (see [`crate::tls`]) | the system's |
    /// | `KEEL_TLS_CLIENT_CERT_FILE` / `KEEL_TLS_CLIENT_KEY_FILE` | a client certificate and its key, for servers that ask for one | none |
    pub fn from_env() -> Result<Self> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let mut config = KeelConfig::new(url);
        if let Ok(name) = std::env::var("KEEL_SERVICE_NAME")
            && !name.trim().is_empty()
        {
            config.service_name = name.trim().to_owned();
        }
        config.cache = crate::cache::CacheConfig::from_env()?;
        config.events = crate::outbox::EventsConfig::from_env(&config.service_name)?;
        config.tls = crate::tls::TlsConfig::from_env();
        if let Some(n) = env_parse::<u32>("KEEL_DB_MAX_CONNECTIONS")? {
            config.pool.max_connections = n;
        }
        if let Some(n) = env_parse::<u32>("KEEL_DB_MIN_CONNECTIONS")? {
            config.pool.min_connections = n;
        }
        if let Some(ms) = env_parse::<u64>("KEEL_DB_ACQUIRE_TIMEOUT_MS")? {
            config.pool.acquire_timeout = Duration::from_millis(ms);
        }
        if let Some(secs) = env_parse::<u64>("KEEL_DB_IDLE_TIMEOUT_SECS")? {
            config.pool.idle_timeout = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(ping) = env_parse::<bool>("KEEL_DB_TEST_BEFORE_ACQUIRE")? {
            config.pool.test_before_acquire = ping;
        }
        if let Some(ms) = env_parse::<u64>("KEEL_DB_STATEMENT_TIMEOUT_MS")? {
            config.pool.statement_timeout = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(n) = env_parse::<u32>("KEEL_DB_RESERVED_CONNECTIONS")? {
            config.pool.reserved_connections = Some(n);
        }
        if let Some(auto) = env_parse::<bool>("KEEL_AUTO_MIGRATE")? {
            config.auto_migrate = auto;
        }
        if let Some(n) = env_parse::<u32>("KEEL_PAGE_SIZE_DEFAULT")? {
            config.page.default_size = n;
        }
        if let Some(n) = env_parse::<u32>("KEEL_PAGE_SIZE_MAX")? {
            config.page.max_size = n;
        }
        if let Ok(secret) = std::env::var("KEEL_PAGE_TOKEN_SECRET")
            && !secret.is_empty()
        {
            config.page_token_secret = Some(Secret::new(secret));
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the values fit together.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_argument("configuration", m));
        let name_ok = !self.service_name.is_empty()
            && self
                .service_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return bad(format!(
                "the service name {:?} must be non-empty ASCII letters, digits, '-' or '_'",
                self.service_name
            ));
        }
        if self.pool.max_connections == 0 {
            return bad("the pool needs at least one connection".into());
        }
        if self
            .pool
            .reserved_connections
            .is_some_and(|r| r >= self.pool.max_connections)
        {
            return bad(format!(
                "reserved_connections ({}) must leave lists at least one of max_connections ({})",
                self.pool.reserved_connections.unwrap_or_default(),
                self.pool.max_connections
            ));
        }
        if self.pool.min_connections > self.pool.max_connections {
            return bad(format!(
                "min_connections ({}) exceeds max_connections ({})",
                self.pool.min_connections, self.pool.max_connections
            ));
        }
        if let Some(secret) = &self.page_token_secret
            && secret.expose().len() < MIN_SECRET_LENGTH
        {
            return Err(Error::invalid_argument(
                "KEEL_PAGE_TOKEN_SECRET",
                format!(
                    "KEEL_PAGE_TOKEN_SECRET has {} bytes; it needs at least {MIN_SECRET_LENGTH} (for example 32 random bytes, hex-encoded)",
                    secret.expose().len()
                ),
            ));
        }
        if self.cache.redis_url.is_some() && self.page_token_secret.is_none() {
            return Err(Error::invalid_argument(
                "KEEL_PAGE_TOKEN_SECRET",
                "KEEL_PAGE_TOKEN_SECRET must be set, to the same value on every instance, when they share a Redis cache (REDIS_URL): a page served from the cache carries a token another instance must open",
            ));
        }
        self.check_features()?;
        self.tls.check()?;
        if self.page.default_size == 0 || self.page.default_size > self.page.max_size {
            return bad(format!(
                "the default page size ({}) must be between 1 and the maximum ({})",
                self.page.default_size, self.page.max_size
            ));
        }
        Ok(())
    }
}

impl KeelConfig {
    /// A setting that needs a cargo feature this build of Keel lacks is a
    /// configuration error naming the feature, not a failure later on.
    fn check_features(&self) -> Result<()> {
        let missing = |setting: &str, feature: &str| {
            Err(Error::invalid_argument(
                "configuration",
                format!(
                    "{setting} needs keel's `{feature}` cargo feature, which this build does not have"
                ),
            ))
        };
        let scheme = self
            .database_url
            .split_once(':')
            .map_or("", |(scheme, _)| scheme);
        match scheme {
            "postgres" | "postgresql" if !cfg!(feature = "postgres") => {
                return missing("a PostgreSQL DATABASE_URL", "postgres");
            }
            "mysql" | "mariadb" if !cfg!(feature = "mysql") => {
                return missing("a MySQL DATABASE_URL", "mysql");
            }
            "sqlite" if !cfg!(feature = "sqlite") => {
                return missing("a SQLite DATABASE_URL", "sqlite");
            }
            _ => {}
        }
        if self.cache.redis_url.is_some() && !cfg!(feature = "redis") {
            return missing("REDIS_URL (the Redis cache tier)", "redis");
        }
        if !cfg!(feature = "tls") {
            if crate::tls::database_url_wants_tls(&self.database_url) {
                return missing(
                    "a DATABASE_URL that asks for TLS (sslmode / ssl-mode)",
                    "tls",
                );
            }
            if self
                .cache
                .redis_url
                .as_deref()
                .is_some_and(|u| u.starts_with("rediss://"))
            {
                return missing("a rediss:// REDIS_URL", "tls");
            }
        }
        match &self.events.sink {
            crate::outbox::SinkKind::Nats { .. } if !cfg!(feature = "nats") => {
                missing("the NATS event sink", "nats")
            }
            crate::outbox::SinkKind::Redis { .. } if !cfg!(feature = "redis") => {
                missing("the Redis Streams event sink", "redis")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argument(err: Error) -> String {
        match err {
            Error::InvalidArgument { argument, message } => format!("{argument}: {message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_short_page_token_secret_is_refused() {
        let mut config = KeelConfig::new("sqlite::memory:");
        config.page_token_secret = Some(Secret::new("bench"));
        let err = argument(config.check().unwrap_err());
        assert!(err.starts_with("KEEL_PAGE_TOKEN_SECRET: "), "{err}");
        assert!(err.contains("at least 32"), "{err}");
        config.page_token_secret = Some(Secret::new("x".repeat(MIN_SECRET_LENGTH)));
        config.check().unwrap();
    }

    #[test]
    fn a_shared_redis_needs_a_page_token_secret() {
        let mut config = KeelConfig::new("sqlite::memory:");
        config.cache.redis_url = Some("redis://127.0.0.1:6379".into());
        let err = argument(config.check().unwrap_err());
        assert!(err.contains("same value on every instance"), "{err}");
        config.page_token_secret = Some(Secret::new("y".repeat(40)));
        config.check().unwrap();
        // Without Redis, a random key per process is allowed (one instance).
        let alone = KeelConfig::new("sqlite::memory:");
        alone.check().unwrap();
    }
}
