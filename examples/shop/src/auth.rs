//! Bearer tokens from `SHOP_TOKENS`: each names an actor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_axum::{ApiError, Identity, RequestId};

/// The tokens the shop accepts, each with the actor it stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    by_token: HashMap<String, String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut actors: Vec<&String> = self.by_token.values().collect();
        actors.sort();
        f.debug_struct("Tokens").field("actors", &actors).finish()
    }
}

impl Tokens {
    /// Parses `name:token,name:token`; names and tokens are non-empty, and
    /// a token stands for one name only.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut by_token = HashMap::new();
        for (i, pair) in text.split(',').map(str::trim).enumerate() {
            if pair.is_empty() {
                continue;
            }
            let (name, token) = pair
                .split_once(':')
                .map(|(n, t)| (n.trim(), t.trim()))
                .filter(|(n, t)| !n.is_empty() && !t.is_empty())
                .ok_or_else(|| format!("entry {} is not name:token", i + 1))?;
            if by_token.insert(token.to_owned(), name.to_owned()).is_some() {
                return Err(format!("entry {} repeats a token", i + 1));
            }
        }
        if by_token.is_empty() {
            return Err("no name:token entry".to_owned());
        }
        Ok(Tokens { by_token })
    }

    /// The actor a token stands for.
    pub fn actor(&self, token: &str) -> Option<&str> {
        self.by_token.get(token).map(String::as_str)
    }

    /// The actors' names, sorted.
    pub fn actors(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_token.values().map(String::as_str).collect();
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
}

/// Middleware: a valid `Authorization: Bearer <token>` puts the actor's
/// [`Identity`] in the request; an invalid or malformed one is answered
/// `401 UNAUTHENTICATED` at once; none leaves the request anonymous (the
/// routes' policies decide what an anonymous caller may do). In the open
/// development mode every request is the actor `dev`.
pub async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = &auth.tokens else {
        request.extensions_mut().insert(Identity {
            actor: "dev".to_owned(),
            tenant: None,
        });
        return next.run(request).await;
    };
    let header = request.headers().get(header::AUTHORIZATION).cloned();
    if let Some(value) = header {
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
            }
            None => {
                let mut err = ApiError::unauthenticated("the bearer token is not valid");
                if let Some(RequestId(id)) = request.extensions().get::<RequestId>() {
                    err = err.with_request_id(id.clone());
                }
                return err.into_response();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let t = Tokens::parse("alice:s3cret, bob:hunter2").unwrap();
        assert_eq!(t.actor("s3cret"), Some("alice"));
        assert_eq!(t.actor("hunter2"), Some("bob"));
        assert_eq!(t.actor("nope"), None);
        assert_eq!(t.actors(), ["alice", "bob"]);
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(Tokens::parse("alice").is_err());
        assert!(Tokens::parse("alice:").is_err());
        assert!(Tokens::parse("a:x,b:x").is_err());
        assert!(Tokens::parse(" , ").is_err());
    }
}
