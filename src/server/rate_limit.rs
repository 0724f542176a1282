//! Per-client rate limiting: a token bucket per client address, refilled at
//! `requests_per_second` up to `burst`. A request finding its bucket empty is
//! answered 429 TOOMANYREQUESTS with `Retry-After` (distribution-spec error
//! codes). Off unless configured.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::connections::ClientAddr;
use crate::config::RateLimitConfig;
use crate::error::Error;

/// Buckets kept before idle (full) ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// One client's bucket: tokens left as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every client's bucket.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    behind_proxy: bool,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `None` when the config turns limiting off.
    pub fn new(config: &RateLimitConfig) -> Option<Arc<RateLimiter>> {
        (config.requests_per_second > 0.0).then(|| {
            Arc::new(RateLimiter {
                rate: config.requests_per_second,
                burst: f64::from(config.burst),
                behind_proxy: config.behind_proxy,
                buckets: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Takes a token for `client` at `now`, or says how long until one is there.
    fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            // A panic elsewhere poisoned the map: serve rather than refuse all.
            return Ok(());
        };
        if buckets.len() > PRUNE_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + rate * (now - b.at).as_secs_f64() < burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled =
            (bucket.tokens + self.rate * (now - bucket.at).as_secs_f64()).min(self.burst);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.rate))
        }
    }

    fn client(&self, request: &Request) -> Option<IpAddr> {
        if self.behind_proxy
            && let Some(forwarded) = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok())
        {
            return Some(forwarded);
        }
        request
            .extensions()
            .get::<ClientAddr>()
            .map(|ClientAddr(a)| a.ip())
    }
}

/// The middleware: probes (`/healthz`, `/readyz`) are never limited.
pub async fn limit_rate(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    request: Request,
    next: Next,
) -> Response {
    let probe = matches!(request.uri().path(), "/healthz" | "/readyz");
    if let Some(limiter) = limiter.filter(|_| !probe)
        && let Some(client) = limiter.client(&request)
        && let Err(wait) = limiter.take(client, Instant::now())
    {
        return Error::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32) -> Arc<RateLimiter> {
        RateLimiter::new(&RateLimitConfig {
            requests_per_second: rate,
            burst,
            behind_proxy: false,
        })
        .expect("on")
    }

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let l = limiter(2.0, 3);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take(a, t0).is_ok());
        }
        let wait = l.take(a, t0).expect_err("burst spent");
        assert_eq!(wait, Duration::from_millis(500), "one token at 2/s");
        assert!(l.take(b, t0).is_ok(), "another client has its own bucket");
        assert!(l.take(a, t0 + Duration::from_millis(499)).is_err());
        assert!(l.take(a, t0 + Duration::from_millis(500)).is_ok());
        // Idle for long: back to the burst, never above it.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.take(a, later).is_ok());
        }
        assert!(l.take(a, later).is_err());
    }

    #[test]
    fn off_by_default() {
        assert!(RateLimiter::new(&RateLimitConfig::default()).is_none());
    }

    #[test]
    fn idle_buckets_are_pruned_past_the_bound() {
        let l = limiter(1000.0, 1);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE as u32 {
            let _ = l.take(IpAddr::from(i.to_be_bytes()), t0);
        }
        let _ = l.take([10, 0, 0, 1].into(), t0 + Duration::from_secs(1));
        let kept = l.buckets.lock().map(|b| b.len()).unwrap_or(usize::MAX);
        assert!(kept < 10, "{kept} buckets kept");
    }
}
