//! What a search keeps between queries: a bounded cache of parsed sidecars
//! (they never change once written: a blob and its sidecar are replaced,
//! never rewritten, so an entry is good until evicted), and recent
//! listings of each app's blobs, reused for `[query] listing_cache_secs`;
//! and the cache of decompressed bodies ([`BodyCache`]).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use object_store::path::Path;
use sluice_core::layout::Partition;

use lru::LruCache;

use super::BodyCache;
use sluice_core::index::BlobIndex;

/// The blob keys one listing found, with their partitions.
pub type Listing = Arc<Vec<(Partition, Path)>>;

/// Parsed sidecars by their full key, and recent listings.
pub struct SidecarCache {
    entries: Mutex<LruCache<String, Arc<BlobIndex>>>,
    listings: Mutex<HashMap<String, (Instant, Listing)>>,
    listing_ttl: Duration,
    bodies: Arc<BodyCache>,
}

impl SidecarCache {
    /// A cache holding at most `capacity` sidecars (at least one), that
    /// lists on every query.
    pub fn new(capacity: usize) -> SidecarCache {
        SidecarCache::with_listings(capacity, Duration::ZERO)
    }

    /// The same, reusing a listing for `ttl`.
    pub fn with_listings(capacity: usize, ttl: Duration) -> SidecarCache {
        SidecarCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            listings: Mutex::new(HashMap::new()),
            listing_ttl: ttl,
            bodies: Arc::new(BodyCache::new(0)),
        }
    }

    /// The same, keeping up to `budget` bytes of decompressed bodies.
    pub fn with_bodies(mut self, budget: usize) -> SidecarCache {
        self.bodies = Arc::new(BodyCache::new(budget));
        self
    }

    /// The cache of decompressed bodies.
    pub fn bodies(&self) -> Arc<BodyCache> {
        self.bodies.clone()
    }

    /// A listing (of one app's day) made less than the TTL ago.
    pub fn listing(&self, key: &str) -> Option<Listing> {
        let listings = self.listings.lock().unwrap_or_else(PoisonError::into_inner);
        listings
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.listing_ttl)
            .map(|(_, keys)| keys.clone())
    }

    /// Keeps a listing (when listings are reused at all).
    pub fn put_listing(&self, key: String, keys: Listing) {
        if self.listing_ttl.is_zero() {
            return;
        }
        let mut listings = self.listings.lock().unwrap_or_else(PoisonError::into_inner);
        listings.retain(|_, (at, _)| at.elapsed() < self.listing_ttl);
        listings.insert(key, (Instant::now(), keys));
    }

    /// Forgets every listing: a blob listed is gone.
    pub fn forget_listings(&self) {
        self.listings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
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
