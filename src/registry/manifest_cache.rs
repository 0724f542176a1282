//! Manifest bytes kept in memory by digest. Content is immutable, so the cache
//! needs no invalidation and stays correct across replicas; which repository
//! may read a manifest, and what a tag points at, always come from the
//! metadata database.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

use crate::oci::Digest;

/// Bytes of manifests kept at most.
const CAPACITY: usize = 32 * 1024 * 1024;
/// Larger manifests are not kept.
const MAX_ENTRY: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct ManifestCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Digest, Bytes>,
    /// Insertion order, for first-in-first-out eviction.
    order: VecDeque<Digest>,
    bytes: usize,
}

impl ManifestCache {
    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.lock().ok()?.map.get(digest).cloned()
    }

    pub fn insert(&self, digest: Digest, bytes: Bytes) {
        if bytes.len() > MAX_ENTRY {
            return;
        }
        let Ok(mut e) = self.inner.lock() else { return };
        if e.map.contains_key(&digest) {
            return;
        }
        while e.bytes + bytes.len() > CAPACITY {
            let Some(old) = e.order.pop_front() else {
                break;
            };
            if let Some(b) = e.map.remove(&old) {
                e.bytes -= b.len();
            }
        }
        e.bytes += bytes.len();
        e.order.push_back(digest.clone());
        e.map.insert(digest, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_small_manifests_and_evicts_oldest_first() {
        let cache = ManifestCache::default();
        let big = Bytes::from(vec![0u8; MAX_ENTRY + 1]);
        cache.insert(Digest::sha256_of(&big), big.clone());
        assert!(cache.get(&Digest::sha256_of(&big)).is_none());
        let entry = vec![1u8; MAX_ENTRY];
        let digests: Vec<Digest> = (0..(CAPACITY / MAX_ENTRY + 1))
            .map(|i| {
                let mut b = entry.clone();
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let d = Digest::sha256_of(&b);
                cache.insert(d.clone(), Bytes::from(b));
                d
            })
            .collect();
        assert!(cache.get(&digests[0]).is_none(), "oldest evicted");
        assert!(cache.get(&digests[digests.len() - 1]).is_some());
    }
}
