//! Hashing an upload beside its write. sha256 is the largest cost of a large
//! push (about 0.65 s of a core per GB here); done on the task that reads
//! the socket it caps a push at one core's rate less the receiving. So a
//! large body's pieces are gathered (shared, not copied) into batches that
//! are hashed on the blocking pool, one batch at a time and in order, while
//! the next one arrives and the storage writes the one before. A body smaller
//! than a batch is hashed where it is, at its end: no thread hop.

use bytes::Bytes;
use futures_util::StreamExt as _;
use sha2::Digest as _;
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::storage::Body;

/// Bytes hashed per trip to the blocking pool.
const BATCH: usize = 2 * 1024 * 1024;

/// `body` as it is, hashed on the way through into `hasher` (which may hold
/// earlier chunks' state); the hasher comes back through the receiver once
/// the body has ended, and not at all if it failed or was dropped before.
pub fn hash_aside<'a>(body: Body<'a>, hasher: Sha256) -> (Body<'a>, oneshot::Receiver<Sha256>) {
    let (done, hashed) = oneshot::channel();
    let aside = Aside {
        body,
        hasher: Some(hasher),
        job: None,
        batch: Vec::new(),
        batched: 0,
        done: Some(done),
    };
    let stream = futures_util::stream::unfold(aside, |mut aside| async move {
        let next = aside.next().await?;
        Some((next, aside))
    });
    (stream.boxed(), hashed)
}

/// The hasher comes back from [`hash_aside`] once the body has ended.
pub async fn hashed(hashed: oneshot::Receiver<Sha256>) -> Result<Sha256> {
    hashed
        .await
        .map_err(|_| Error::Internal("body ended without its hash".into()))
}

struct Aside<'a> {
    body: Body<'a>,
    /// The hasher, while no batch is being hashed.
    hasher: Option<Sha256>,
    /// The batch being hashed, which has the hasher.
    job: Option<JoinHandle<Sha256>>,
    /// Pieces not yet hashed.
    batch: Vec<Bytes>,
    batched: usize,
    done: Option<oneshot::Sender<Sha256>>,
}

impl Aside<'_> {
    /// The next piece of the body, its batch handed to the hasher once full;
    /// at the end, the rest hashed and the hasher sent back.
    async fn next(&mut self) -> Option<Result<Bytes>> {
        match self.body.next().await {
            Some(Ok(piece)) => {
                self.batched += piece.len();
                self.batch.push(piece.clone());
                if self.batched >= BATCH
                    && let Err(e) = self.hand_off().await
                {
                    return Some(Err(e));
                }
                Some(Ok(piece))
            }
            Some(Err(e)) => {
                // A failed body has no hash, whatever follows.
                self.done = None;
                Some(Err(e))
            }
            None => match self.take_hasher().await {
                Ok(mut hasher) => {
                    self.batch.iter().for_each(|piece| hasher.update(piece));
                    self.batch.clear();
                    if let Some(done) = self.done.take() {
                        // The receiver gone means nobody waits for the hash.
                        let _ = done.send(hasher);
                    }
                    None
                }
                Err(e) => Some(Err(e)),
            },
        }
    }

    /// Starts hashing the batch gathered so far, once the one before is done.
    async fn hand_off(&mut self) -> Result<()> {
        let mut hasher = self.take_hasher().await?;
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.job = Some(tokio::task::spawn_blocking(move || {
            batch.iter().for_each(|piece| hasher.update(piece));
            hasher
        }));
        Ok(())
    }

    /// The hasher, once the batch being hashed (if any) is done.
    async fn take_hasher(&mut self) -> Result<Sha256> {
        if let Some(job) = self.job.take() {
            return job
                .await
                .map_err(|e| Error::Internal(format!("hash task: {e}")));
        }
        self.hasher
            .take()
            .ok_or_else(|| Error::Internal("body hashed after its end".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn through(pieces: Vec<Bytes>) -> (Vec<u8>, Vec<u8>) {
        let body = futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed();
        let (body, hashed_rx) = hash_aside(body, Sha256::new());
        let passed: Vec<u8> = body
            .map(|piece| piece.expect("piece").to_vec())
            .concat()
            .await;
        let hash = hashed(hashed_rx).await.expect("hashed").finalize().to_vec();
        (passed, hash)
    }

    #[tokio::test]
    async fn bodies_pass_unchanged_and_hash_as_a_whole() {
        let data: Vec<u8> = (0..(3 * BATCH + 12_345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        for piece in [1, 1000, 65_536, BATCH, BATCH + 1, data.len()] {
            let pieces = data.chunks(piece).map(Bytes::copy_from_slice).collect();
            let (passed, hash) = through(pieces).await;
            assert_eq!(passed, data, "pieces of {piece}");
            assert_eq!(hash, Sha256::digest(&data).to_vec(), "pieces of {piece}");
        }
        let (passed, hash) = through(Vec::new()).await;
        assert!(passed.is_empty());
        assert_eq!(hash, Sha256::digest(b"").to_vec());
    }

    #[tokio::test]
    async fn a_failed_body_gives_no_hash() {
        let pieces = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(Error::BlobUploadInvalid("cut off".into())),
        ];
        let (body, hashed_rx) =
            hash_aside(futures_util::stream::iter(pieces).boxed(), Sha256::new());
        let seen: Vec<_> = body.collect().await;
        assert!(seen[1].is_err());
        drop(seen);
        assert!(hashed(hashed_rx).await.is_err());
    }
}
