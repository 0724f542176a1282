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

/// Answers read from the metadata database, each kept with the generation it
/// was read under (see [`crate::meta::Changes`]): any write since makes them
/// stale, so a tag move or delete is seen by the very next request. Holds at
/// most `capacity` answers; it is emptied when full.
#[derive(Debug)]
pub struct GenerationCache<K, V> {
    inner: Mutex<Generation<K, V>>,
    capacity: usize,
}

#[derive(Debug)]
struct Generation<K, V> {
    generation: u64,
    map: HashMap<K, V>,
}

impl<K: std::hash::Hash + Eq, V: Clone> GenerationCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        GenerationCache {
            inner: Mutex::new(Generation {
                generation: 0,
                map: HashMap::new(),
            }),
            capacity,
        }
    }

    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        let g = self.inner.lock().ok()?;
        (g.generation == generation)
            .then(|| g.map.get(key).cloned())
            .flatten()
    }

    /// Keeps an answer read under `generation`, unless a newer one is kept.
    pub fn insert(&self, key: K, generation: u64, value: V) {
        let Ok(mut g) = self.inner.lock() else { return };
        if generation != g.generation {
            if generation < g.generation {
                return;
            }
            g.map.clear();
            g.generation = generation;
        }
        if g.map.len() >= self.capacity {
            g.map.clear();
        }
        g.map.insert(key, value);
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

    #[test]
    fn look_ups_hold_only_while_the_generation_stands() {
        use crate::meta::StoredManifest;
        use crate::oci::{Reference, RepoName};
        let cache = GenerationCache::new(16);
        let key = |tag: &str| {
            let repo = RepoName::parse("app").ok();
            let tag = crate::oci::Tag::parse(tag).ok();
            (repo.expect("repo"), Reference::Tag(tag.expect("tag")))
        };
        let found = StoredManifest {
            digest: Digest::sha256_of(b"m"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1,
        };
        cache.insert(key("v1"), 7, found.clone());
        assert!(cache.get(&key("v1"), 7).is_some());
        assert!(cache.get(&key("v2"), 7).is_none());
        assert!(cache.get(&key("v1"), 8).is_none(), "a write happened since");
        // An answer read under an older generation is not kept.
        cache.insert(key("v2"), 8, found.clone());
        cache.insert(key("v1"), 7, found);
        assert!(cache.get(&key("v1"), 8).is_none());
        assert!(cache.get(&key("v2"), 8).is_some());
    }
}
