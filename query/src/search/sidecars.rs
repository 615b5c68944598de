//! A bounded cache of parsed sidecars. Sidecars never change once written
//! (a blob and its sidecar are replaced, never rewritten), so an entry is
//! good until evicted.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use sluice_core::index::BlobIndex;

/// Parsed sidecars by their full key.
pub struct SidecarCache {
    entries: Mutex<LruCache<String, Arc<BlobIndex>>>,
}

impl SidecarCache {
    /// A cache holding at most `capacity` sidecars (at least one).
    pub fn new(capacity: usize) -> SidecarCache {
        SidecarCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<BlobIndex>> {
        self.lock().get(key).cloned()
    }

    pub fn put(&self, key: String, index: Arc<BlobIndex>) {
        self.lock().put(key, index);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<BlobIndex>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
