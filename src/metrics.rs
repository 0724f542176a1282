//! What a running registry counts, served at `/metrics` in the Prometheus
//! (OpenMetrics) text format through prometheus-client. One [`Metrics`] per
//! registry: the HTTP layer, storage, the metadata calls, GC, webhooks and
//! releases record into it. Labels are bounded sets (route kinds, method
//! names, status codes, operation and area names, configured webhook
//! names), never paths or repository names.

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The media type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub op: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReleaseLabels {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScanLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
    pub result: &'static str,
}

/// The caches and results counted, in the order of `Metrics::cache_counters`.
const CACHES: [(&str, &str); 4] = [
    ("manifests", "hit"),
    ("manifests", "miss"),
    ("lookups", "hit"),
    ("lookups", "miss"),
];

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.5 ms to about 12 s (×2.5 each).
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.5, 12))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Timings<RouteLabels>,
    pub received_bytes: Counter,
    pub sent_bytes: Counter,
    pub uploads_in_progress: Gauge,
    /// 1 while this process runs the background work (see `meta::Leadership`).
    pub leader: Gauge,
    /// Round trips to the database server (set from `meta::Traffic` at scrape).
    pub db_round_trips: Counter,
    pub storage_ops: Family<OutcomeLabels, Counter>,
    pub storage_seconds: Timings<OpLabels>,
    pub db_ops: Family<OutcomeLabels, Counter>,
    pub db_seconds: Timings<OpLabels>,
    pub gc_runs: Family<OutcomeLabels, Counter>,
    pub gc_seconds: Histogram,
    pub gc_freed_bytes: Counter,
    pub gc_deleted_blobs: Counter,
    pub gc_deleted_manifests: Counter,
    pub gc_expired_uploads: Counter,
    pub webhook_deliveries: Family<WebhookLabels, Counter>,
    pub webhook_lag: Family<NameLabels, Gauge>,
    pub releases: Family<ReleaseLabels, Counter>,
    pub scans: Family<ScanLabels, Counter>,
    pub cache: Family<CacheLabels, Counter>,
    /// The cache counters, resolved once (they are counted on every pull).
    cache_counters: [Counter; 4],
    /// The configured webhooks, whose lag is read at scrape time.
    pub webhooks: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("berth"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
            uploads_in_progress: Gauge::default(),
            leader: Gauge::default(),
            db_round_trips: Counter::default(),
            storage_ops: Family::default(),
            storage_seconds: Family::new_with_constructor(latency),
            db_ops: Family::default(),
            db_seconds: Family::new_with_constructor(latency),
            gc_runs: Family::default(),
            gc_seconds: latency(),
            gc_freed_bytes: Counter::default(),
            gc_deleted_blobs: Counter::default(),
            gc_deleted_manifests: Counter::default(),
            gc_expired_uploads: Counter::default(),
            webhook_deliveries: Family::default(),
            webhook_lag: Family::default(),
            releases: Family::default(),
            scans: Family::default(),
            cache: Family::default(),
            webhooks: std::sync::Mutex::default(),
            cache_counters: Default::default(),
        };
        let r = &mut m.registry;
        r.register(
            "build",
            "The running build",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route kind, method and status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to the end of its response body",
            Unit::Seconds,
            m.request_seconds.clone(),
        );
        r.register_with_unit(
            "http_received",
            "Request body bytes received",
            Unit::Bytes,
            m.received_bytes.clone(),
        );
        r.register_with_unit(
            "http_sent",
            "Response body bytes sent",
            Unit::Bytes,
            m.sent_bytes.clone(),
        );
        r.register(
            "uploads_in_progress",
            "Upload sessions open (as of the last scrape)",
            m.uploads_in_progress.clone(),
        );
        r.register(
            "db_round_trips",
            "Requests sent to the database server (0 on SQLite, which is embedded)",
            m.db_round_trips.clone(),
        );
        r.register(
            "leader",
            "1 while this replica runs scheduled GC, upload expiry and webhook deliveries",
            m.leader.clone(),
        );
        r.register(
            "storage_operations",
            "Object storage operations, by operation and result",
            m.storage_ops.clone(),
        );
        r.register_with_unit(
            "storage_operation_duration",
            "Object storage operation latency (a read: until its stream is open)",
            Unit::Seconds,
            m.storage_seconds.clone(),
        );
        r.register(
            "db_operations",
            "Metadata database calls, by area and result",
            m.db_ops.clone(),
        );
        r.register_with_unit(
            "db_operation_duration",
            "Metadata database call latency, by area (blocking pool wait included)",
            Unit::Seconds,
            m.db_seconds.clone(),
        );
        r.register(
            "gc_runs",
            "Garbage collections, by result",
            m.gc_runs.clone(),
        );
        r.register_with_unit(
            "gc_duration",
            "Garbage collection run time",
            Unit::Seconds,
            m.gc_seconds.clone(),
        );
        r.register_with_unit(
            "gc_freed",
            "Bytes freed by garbage collection",
            Unit::Bytes,
            m.gc_freed_bytes.clone(),
        );
        r.register(
            "gc_deleted_blobs",
            "Blobs deleted by garbage collection",
            m.gc_deleted_blobs.clone(),
        );
        r.register(
            "gc_deleted_manifests",
            "Manifests deleted by garbage collection",
            m.gc_deleted_manifests.clone(),
        );
        r.register(
            "gc_expired_uploads",
            "Upload sessions expired by garbage collection",
            m.gc_expired_uploads.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook batches posted, by webhook and result",
            m.webhook_deliveries.clone(),
        );
        r.register(
            "webhook_outbox_lag",
            "Events not yet delivered to each webhook (as of the last scrape)",
            m.webhook_lag.clone(),
        );
        r.register(
            "releases",
            "Promotions, refused promotions and rollbacks (manual and automatic)",
            m.releases.clone(),
        );
        r.register(
            "scans",
            "Pickle scans by verdict (clean, unknown, malformed, dangerous), and pushes the scan refused (refused_push)",
            m.scans.clone(),
        );
        r.register(
            "cache_lookups",
            "In-memory cache lookups, by cache and result (hit or miss)",
            m.cache.clone(),
        );
        // The fixed label sets are shown from the start, at zero, so that a
        // dashboard or an alert sees 0 rather than no data.
        for action in [
            "promote",
            "promote_refused",
            "rollback",
            "automatic_rollback",
        ] {
            drop(m.releases.get_or_create(&ReleaseLabels { action }));
        }
        for outcome in ["clean", "unknown", "malformed", "dangerous", "refused_push"] {
            drop(m.scans.get_or_create(&ScanLabels { outcome }));
        }
        for result in ["ok", "error"] {
            drop(m.gc_runs.get_or_create(&OutcomeLabels { op: "gc", result }));
        }
        m.cache_counters = CACHES.map(|(cache, result)| {
            m.cache
                .get_or_create(&CacheLabels { cache, result })
                .clone()
        });
        m
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one call of `op` in `family`, with its latency since `start`.
    pub fn record(
        ops: &Family<OutcomeLabels, Counter>,
        seconds: &Timings<OpLabels>,
        op: &'static str,
        ok: bool,
        start: Instant,
    ) {
        let result = if ok { "ok" } else { "error" };
        ops.get_or_create(&OutcomeLabels { op, result }).inc();
        seconds
            .get_or_create(&OpLabels { op })
            .observe(start.elapsed().as_secs_f64());
    }

    pub fn cache(&self, cache: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }

    pub fn release(&self, action: &'static str) {
        self.releases.get_or_create(&ReleaseLabels { action }).inc();
    }

    pub fn scan(&self, outcome: &'static str) {
        self.scans.get_or_create(&ScanLabels { outcome }).inc();
    }

    pub fn gc_run(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.gc_runs
            .get_or_create(&OutcomeLabels { op: "gc", result })
            .inc();
        self.gc_seconds.observe(took.as_secs_f64());
    }

    pub fn webhook(&self, webhook: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.webhook_deliveries
            .get_or_create(&WebhookLabels {
                webhook: webhook.to_owned(),
                result,
            })
            .inc();
    }
}
