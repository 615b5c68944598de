//! Decompressed blob bodies kept between searches, bounded by bytes.
//!
//! A blob never changes once written (it is replaced, never rewritten), so
//! a body is good until evicted. Only selective searches — those reading
//! few blobs, such as a request id or a rare word — fill the cache: a scan
//! over many blobs would only push out the bodies that are asked for again.
//! A body larger than a quarter of the budget is never kept.

use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

/// Searches with at most this many candidate blobs keep their bodies.
pub const SELECTIVE_BLOBS: usize = 64;

/// Bodies by blob key, least recently used evicted first.
pub struct BodyCache {
    inner: Mutex<Bodies>,
    budget: usize,
}

struct Bodies {
    lru: LruCache<String, Arc<Vec<u8>>>,
    bytes: usize,
}

impl BodyCache {
    /// A cache of at most `budget` bytes of bodies (0: none kept).
    pub fn new(budget: usize) -> BodyCache {
        BodyCache {
            inner: Mutex::new(Bodies {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        self.lock().lru.get(key).cloned()
    }

    /// Keeps `body`, evicting the least recently used past the budget.
    pub fn put(&self, key: String, body: Arc<Vec<u8>>) {
        if body.len() > self.budget / 4 {
            return;
        }
        let mut inner = self.lock();
        inner.bytes += body.len();
        if let Some(old) = inner.lru.put(key, body) {
            inner.bytes -= old.len();
        }
        while inner.bytes > self.budget {
            match inner.lru.pop_lru() {
                Some((_, evicted)) => inner.bytes -= evicted.len(),
                None => break,
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bodies> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_stay_within_the_budget_newest_kept() {
        let cache = BodyCache::new(100);
        cache.put("a".into(), Arc::new(vec![0; 20]));
        cache.put("b".into(), Arc::new(vec![0; 25]));
        assert!(cache.get("a").is_some());
        // Too large for a quarter of the budget: not kept.
        cache.put("huge".into(), Arc::new(vec![0; 26]));
        assert!(cache.get("huge").is_none());
        for i in 0..5 {
            cache.put(format!("c{i}"), Arc::new(vec![0; 20]));
        }
        assert!(cache.bytes() <= 100);
        assert!(cache.get("c4").is_some());
        assert!(
            cache.get("b").is_none(),
            "the least recently used went first"
        );
        cache.put("c4".into(), Arc::new(vec![0; 10]));
        assert_eq!(cache.get("c4").unwrap().len(), 10);
        assert!(cache.bytes() <= 100);
        assert!(BodyCache::new(0).get("x").is_none());
    }
}
