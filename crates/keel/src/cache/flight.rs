//! Single flight: one load per key for all concurrent readers.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Cache;
use crate::sync::Unpoison as _;
use crate::{Error, Result};

/// The one load of a key in flight: its result, shared by every reader
/// that waited for it (`None` when it failed).
pub(super) type Flight = Arc<tokio::sync::OnceCell<Option<Arc<dyn Any + Send + Sync>>>>;

/// Keeps a load registered until the value is stored.
pub(super) struct FlightGuard<'a> {
    pub(super) cache: &'a Cache,
    pub(super) key: String,
    pub(super) flight: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self.cache.inner.flights.lock().unpoisoned();
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

impl Cache {
    /// Runs `load` once for all concurrent callers of `key`; a caller that
    /// finds a value in L1 (`recheck`) by the time it leads loads nothing.
    /// The flight stays registered until the returned guard drops, after the
    /// value was stored, so no late caller loads again meanwhile.
    pub(super) async fn load_once<T, F, Fut>(
        &self,
        key: &str,
        recheck: impl FnOnce() -> Option<T>,
        load: F,
    ) -> (Result<T>, FlightGuard<'_>)
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let flight: Flight = self
            .inner
            .flights
            .lock()
            .unpoisoned()
            .entry(key.to_owned())
            .or_default()
            .clone();
        let guard = FlightGuard {
            cache: self,
            key: key.to_owned(),
            flight: flight.clone(),
        };
        let mut load = Some(load);
        let mut failure = None;
        let (load_slot, failure_slot) = (&mut load, &mut failure);
        let shared = flight
            .get_or_init(|| async move {
                if let Some(value) = recheck() {
                    return Some(Arc::new(value) as Arc<dyn Any + Send + Sync>);
                }
                let load = load_slot.take().expect("the loader runs once");
                self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("keel_cache_loads_total").increment(1);
                match load().await {
                    Ok(value) => Some(Arc::new(value) as Arc<dyn Any + Send + Sync>),
                    Err(err) => {
                        *failure_slot = Some(err);
                        None
                    }
                }
            })
            .await
            .clone();
        if let Some(err) = failure {
            return (Err(err), guard);
        }
        let result = match shared.and_then(|v| v.downcast_ref::<T>().cloned()) {
            Some(value) => Ok(value),
            // The leader failed: read for ourselves.
            None => match load.take() {
                Some(load) => {
                    self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
                    load().await
                }
                None => Err(Error::internal("cache load failed")),
            },
        };
        (result, guard)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::cache::CacheConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_readers_of_a_key_share_one_load() {
        let cache = Cache::new(&CacheConfig::default()).unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let readers = (0..32).map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                let (value, _guard) = cache
                    .load_once(
                        "keel:thing:_:v:1",
                        || None,
                        || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(7u32)
                        },
                    )
                    .await;
                value.unwrap()
            })
        });
        let values = futures_util::future::join_all(readers).await;
        assert!(values.into_iter().all(|v| v.unwrap() == 7));
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for 32 readers");
        assert_eq!(cache.stats().loads, 1);
        assert!(
            cache.inner.flights.lock().unpoisoned().is_empty(),
            "the flight is gone"
        );
    }

    #[tokio::test]
    async fn a_value_found_on_the_recheck_loads_nothing() {
        let cache = Cache::new(&CacheConfig::default()).unwrap();
        let (value, _guard) = cache
            .load_once("k", || Some(3u32), || async { panic!("must not load") })
            .await;
        assert_eq!(value.unwrap(), 3);
        assert_eq!(cache.stats().loads, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_leader_fails_a_waiting_reader_loads_for_itself() {
        let cache = Cache::new(&CacheConfig::default()).unwrap();
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let (value, _guard) = cache
                    .load_once(
                        "k",
                        || None::<u32>,
                        || async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err(Error::internal("the database went away"))
                        },
                    )
                    .await;
                value
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (follower, _guard) = cache.load_once("k", || None, || async { Ok(9u32) }).await;
        assert!(
            leader.await.unwrap().is_err(),
            "the leader sees its own error"
        );
        assert_eq!(
            follower.unwrap(),
            9,
            "the follower is not failed by another's error"
        );
    }
}
