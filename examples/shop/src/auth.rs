//! Bearer tokens from `SHOP_TOKENS`: each names an actor, a member of the
//! shop's staff.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::future::Ready;
use std::ops::ControlFlow;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use keel_axum::{ApiError, Identity, RateLimit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

/// The fewest characters a token has: guessing one must be hopeless.
pub const MIN_TOKEN_LENGTH: usize = 32;

/// Failed sign-ins a client may make a minute before it is refused for a
/// while without its token being looked at.
pub const FAILURES_PER_MINUTE: u32 = 10;

/// The tokens the shop accepts, each with the actor it stands for. Only
/// their SHA-256 digests are kept, and a presented token is compared with
/// every one of them in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    by_digest: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("actors", &self.actors())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Parses `name:token,name:token`; names are non-empty, tokens have at
    /// least [`MIN_TOKEN_LENGTH`] characters, and a token stands for one
    /// name only.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut by_digest: Vec<([u8; 32], String)> = Vec::new();
        for (i, pair) in text.split(',').map(str::trim).enumerate() {
            if pair.is_empty() {
                continue;
            }
            let (name, token) = pair
                .split_once(':')
                .map(|(n, t)| (n.trim(), t.trim()))
                .filter(|(n, t)| !n.is_empty() && !t.is_empty())
                .ok_or_else(|| format!("entry {} is not name:token", i + 1))?;
            let length = token.chars().count();
            if length < MIN_TOKEN_LENGTH {
                return Err(format!(
                    "the token of entry {} ({name}) has {length} characters; a token has at least {MIN_TOKEN_LENGTH}",
                    i + 1
                ));
            }
            let d = digest(token);
            if by_digest.iter().any(|(known, _)| *known == d) {
                return Err(format!("entry {} repeats a token", i + 1));
            }
            by_digest.push((d, name.to_owned()));
        }
        if by_digest.is_empty() {
            return Err("no name:token entry".to_owned());
        }
        Ok(Tokens { by_digest })
    }

    /// The actor a token stands for. Every known token is compared, each in
    /// constant time, whichever matches.
    pub fn actor(&self, token: &str) -> Option<&str> {
        let presented = digest(token);
        let mut found = None;
        for (known, actor) in &self.by_digest {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(actor.as_str());
            }
        }
        found
    }

    /// The actors' names, sorted.
    pub fn actors(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_digest.iter().map(|(_, n)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// The authentication state of the app.
#[derive(Debug)]
pub struct Auth {
    /// `None`: the open development mode.
    pub tokens: Option<Tokens>,
    /// Failed sign-ins per client address (governor's GCRA).
    failures: RateLimit,
    /// Clients over their failures' budget, and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Auth {
    /// Authentication with these tokens (`None`: open mode).
    pub fn new(tokens: Option<Tokens>) -> Self {
        Auth {
            tokens,
            failures: RateLimit::per_minute(
                NonZeroU32::new(FAILURES_PER_MINUTE).expect("a positive number"),
            ),
            blocked: Mutex::default(),
        }
    }

    /// Whether `client` is refused for now, and for how long.
    fn blocked_for(&self, client: Option<IpAddr>) -> Option<Duration> {
        let client = client?;
        let blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        blocked
            .get(&client)
            .and_then(|until| until.checked_duration_since(Instant::now()))
    }

    /// Counts a failed sign-in of `client`; past the budget, refuses it for
    /// as long as the budget takes to allow one more, and says for how long.
    fn failed(&self, client: Option<IpAddr>) -> Option<Duration> {
        let client = client?;
        let wait = self.failures.check(&client.to_string()).err()?;
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if blocked.len() > 10_000 {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(client, now + wait);
        Some(wait)
    }
}

/// The authentication layer: a valid `Authorization: Bearer <token>` puts
/// the actor's [`Identity`] in the request; an invalid or malformed one is
/// answered `401 UNAUTHENTICATED` at once; none leaves the request
/// anonymous (the routes' policies decide what an anonymous caller may
/// do). A client with more than [`FAILURES_PER_MINUTE`] failed sign-ins is
/// answered `429 RATE_LIMITED` before its token is looked at. In the open
/// development mode every request is the actor `dev`.
///
/// A tower layer rather than `axum::middleware::from_fn`, which clones and
/// boxes the inner service and boxes its future on every request.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Auth>,
}

impl AuthLayer {
    /// Authenticates with `auth`'s tokens.
    pub fn new(auth: Auth) -> Self {
        AuthLayer {
            auth: Arc::new(auth),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    auth: Arc<Auth>,
}

impl<S> Service<Request> for Authenticate<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.auth.admit(&mut request) {
            ControlFlow::Continue(()) => Either::Left(self.inner.call(request)),
            ControlFlow::Break(answer) => Either::Right(std::future::ready(Ok(answer))),
        }
    }
}

impl Auth {
    /// Puts the caller's identity in `request` and lets it go on, or
    /// answers it.
    fn admit(&self, request: &mut Request) -> ControlFlow<Response> {
        let Some(tokens) = &self.tokens else {
            request.extensions_mut().insert(Identity {
                actor: "dev".to_owned(),
                tenant: None,
            });
            return ControlFlow::Continue(());
        };
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return ControlFlow::Continue(());
        };
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        if let Some(wait) = self.blocked_for(client) {
            return ControlFlow::Break(
                ApiError::rate_limited(wait)
                    .for_request(request.extensions())
                    .into_response(),
            );
        }
        let actor = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .and_then(|token| tokens.actor(token.trim()));
        match actor {
            Some(actor) => {
                let identity = Identity {
                    actor: actor.to_owned(),
                    tenant: None,
                };
                request.extensions_mut().insert(identity);
                ControlFlow::Continue(())
            }
            None => {
                let err = match self.failed(client) {
                    Some(wait) => ApiError::rate_limited(wait),
                    None => ApiError::unauthenticated("the bearer token is not valid"),
                };
                ControlFlow::Break(err.for_request(request.extensions()).into_response())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice-0123456789abcdef0123456789abcdef";
    const BOB: &str = "bob-0123456789abcdef0123456789abcdef01";

    #[test]
    fn parse() {
        let t = Tokens::parse(&format!("alice:{ALICE}, bob:{BOB}")).unwrap();
        assert_eq!(t.actor(ALICE), Some("alice"));
        assert_eq!(t.actor(BOB), Some("bob"));
        assert_eq!(t.actor("nope"), None);
        assert_eq!(t.actor(&ALICE[..ALICE.len() - 1]), None);
        assert_eq!(t.actors(), ["alice", "bob"]);
        assert!(!format!("{t:?}").contains(ALICE));
        assert!(Tokens::parse("alice").is_err());
        assert!(Tokens::parse("alice:").is_err());
        assert!(Tokens::parse(&format!("a:{ALICE},b:{ALICE}")).is_err());
        assert!(Tokens::parse(" , ").is_err());
        let short = Tokens::parse("alice:s3cret").unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
    }

    #[test]
    fn failures_past_the_budget_block_the_client() {
        let auth = Auth::new(None);
        let client = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..FAILURES_PER_MINUTE {
            assert!(auth.failed(client).is_none());
            assert!(auth.blocked_for(client).is_none());
        }
        assert!(auth.failed(client).is_some());
        let wait = auth.blocked_for(client).expect("blocked");
        assert!(wait <= Duration::from_secs(7), "{wait:?}");
        assert!(
            auth.blocked_for(Some(IpAddr::from([10, 0, 0, 2])))
                .is_none()
        );
    }
}
