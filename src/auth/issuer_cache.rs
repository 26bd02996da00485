//! Registrations found by the issuer a token names (identity providers, CDS clients), per
//! process: a read (found or not) is reused for `ttl`, so deleting a registration stops its
//! tokens within that time on every instance (at once where it was deleted, which forgets it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most issuers remembered; past it the cache starts again (a flood of made-up issuers
/// costs a lookup each, never unbounded memory).
const MAX_ENTRIES: usize = 10_000;

pub struct IssuerCache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<T>)>>,
}

impl<T: Clone> IssuerCache<T> {
    pub fn new(ttl: Duration) -> Self {
        IssuerCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The registration of `issuer`: remembered while fresh, else `load`ed and remembered.
    pub async fn get<E>(&self, issuer: &str, load: impl AsyncFnOnce() -> Result<Option<T>, E>) -> Result<Option<T>, E> {
        if let Ok(map) = self.entries.lock()
            && let Some((at, found)) = map.get(issuer)
            && at.elapsed() < self.ttl
        {
            return Ok(found.clone());
        }
        let found = load().await?;
        if let Ok(mut map) = self.entries.lock() {
            if map.len() > MAX_ENTRIES {
                map.clear();
            }
            map.insert(issuer.to_string(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    pub fn forget(&self, issuer: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(issuer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_is_reused_until_forgotten_or_stale() {
        let cache: IssuerCache<u32> = IssuerCache::new(Duration::from_secs(60));
        let first: Result<_, ()> = cache.get("iss", async || Ok(Some(1))).await;
        assert_eq!(first, Ok(Some(1)));
        let cached: Result<_, ()> = cache.get("iss", async || Ok(Some(2))).await;
        assert_eq!(cached, Ok(Some(1)));
        cache.forget("iss");
        let reloaded: Result<_, ()> = cache.get("iss", async || Ok(None)).await;
        assert_eq!(reloaded, Ok(None));
        let stale: IssuerCache<u32> = IssuerCache::new(Duration::ZERO);
        let _: Result<_, ()> = stale.get("iss", async || Ok(Some(1))).await;
        let again: Result<_, ()> = stale.get("iss", async || Ok(Some(2))).await;
        assert_eq!(again, Ok(Some(2)));
    }
}
