//! Assembles a running registry: storage and metadata opened from the config,
//! the router with its middleware, and graceful shutdown.

mod connections;
pub mod observe;
pub mod rate_limit;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::config::Config;
use crate::error::{Result, ServerFault};
use crate::registry::Registry;
use crate::registry::events::Webhook;

pub use crate::meta::DATABASE_FILE;

/// Opens the configured store (local disk under the data directory by
/// default) and metadata database (SQLite in the data directory by default).
pub async fn open_registry(config: &Config) -> Result<Registry> {
    std::fs::create_dir_all(&config.data_dir)?;
    let blobs = crate::storage::backend::open(&config.storage, &config.data_dir)?;
    let meta = crate::meta::open(&config.metadata, &config.data_dir).await?;
    Ok(Registry::new(blobs, meta, config.registry_settings()))
}

/// The whole HTTP application for a registry.
pub fn app(
    registry: Registry,
    auth: Option<Arc<Auth>>,
    max_concurrent: usize,
    rate_limiter: Option<Arc<rate_limit::RateLimiter>>,
) -> Router {
    let permits = Arc::new(tokio::sync::Semaphore::new(max_concurrent));
    let metrics = Arc::clone(registry.metrics());
    crate::api::router(registry, auth)
        .layer(axum::middleware::from_fn_with_state(
            permits,
            limit_concurrency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            rate_limiter,
            rate_limit::limit_rate,
        ))
        .layer(axum::middleware::map_response(log_server_faults))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::observe,
        ))
}

/// Answers 429 with `Retry-After` when `max_concurrent_requests` are in
/// flight, rather than queueing without bound.
async fn limit_concurrency(
    axum::extract::State(permits): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match permits.try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => axum::response::IntoResponse::into_response(crate::error::Error::TooManyRequests),
    }
}

/// A server fault is logged once, here, with its cause; the client only sees
/// that it happened.
async fn log_server_faults(response: Response) -> Response {
    if let Some(ServerFault(cause)) = response.extensions().get::<ServerFault>() {
        tracing::error!(status = %response.status(), %cause, "request failed");
    }
    response
}

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    app: Router,
    registry: Registry,
    webhooks: Vec<Webhook>,
    gc_interval: Option<std::time::Duration>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_read_timeout: std::time::Duration,
    /// `/metrics` alone, unauthenticated, on its own address.
    metrics_listener: Option<TcpListener>,
}

impl Server {
    /// Opens the registry and binds its address (port 0 picks a free one).
    pub async fn bind(config: &Config) -> Result<Server> {
        Server::bind_with(config, open_registry(config).await?).await
    }

    /// Binds a registry assembled by the caller (another store, a test wrapper).
    pub async fn bind_with(config: &Config, registry: Registry) -> Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let https = config.tls.is_some();
        let auth = config
            .auth
            .clone()
            .map(|a| Auth::new(a).map(|a| a.with_https(https)))
            .transpose()?
            .map(Arc::new);
        Ok(Server {
            listener,
            app: app(
                registry.clone(),
                auth,
                config.max_concurrent_requests,
                rate_limit::RateLimiter::new(&config.rate_limit),
            ),
            registry,
            webhooks: config.webhooks.clone(),
            gc_interval: config.gc_interval()?,
            tls: config
                .tls
                .as_ref()
                .map(|t| connections::tls_acceptor(&t.cert, &t.key))
                .transpose()?,
            header_read_timeout: crate::time::parse_duration(&config.header_read_timeout)?,
            metrics_listener: match config.metrics_listen {
                Some(addr) => Some(TcpListener::bind(addr).await?),
                None => None,
            },
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then finishes requests in flight.
    /// Webhook deliveries and scheduled collection run beside it, on the
    /// leader only (see [`lead`]), and stop with it; webhook cursors are in
    /// the database, so deliveries resume where they were, on whichever
    /// process leads next.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.registry
            .watch_webhooks(self.webhooks.iter().map(|h| h.name.clone()).collect());
        let mut background = vec![tokio::spawn(lead(
            self.registry.clone(),
            self.webhooks,
            self.gc_interval,
        ))];
        if let Some(listener) = self.metrics_listener {
            background.push(tokio::spawn(serve_metrics(listener, self.registry.clone())));
        }
        let served = connections::serve(
            self.listener,
            self.app,
            self.tls,
            self.header_read_timeout,
            shutdown,
        )
        .await;
        for task in background {
            task.abort();
        }
        served?;
        Ok(())
    }
}

/// Serves `/metrics` alone on its own listener (no authentication: bind it
/// to a private address).
async fn serve_metrics(listener: TcpListener, registry: Registry) {
    let app = Router::new().route(
        "/metrics",
        axum::routing::get(
            |axum::extract::State(r): axum::extract::State<Registry>| async move {
                match r.metrics_text().await {
                    Ok(text) => axum::response::IntoResponse::into_response((
                        [(
                            axum::http::header::CONTENT_TYPE,
                            crate::metrics::CONTENT_TYPE,
                        )],
                        text,
                    )),
                    Err(e) => axum::response::IntoResponse::into_response(e),
                }
            },
        ),
    );
    if let Err(e) = axum::serve(listener, app.with_state(registry)).await {
        tracing::error!(error = %e, "metrics listener failed");
    }
}

/// How often a process checks that it leads, or tries to.
const LEADER_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the background work while this process leads: webhook deliveries,
/// and collection every `gc_interval`; stops it when the lead is lost, and
/// starts it again when it comes back. A process that takes over collects
/// at once if a collection was left unfinished (tombstones remain).
async fn lead(
    registry: Registry,
    webhooks: Vec<Webhook>,
    gc_interval: Option<std::time::Duration>,
) {
    // Dropped with this future (the server stopping), the set aborts its tasks.
    let mut tasks = tokio::task::JoinSet::new();
    let mut leading = false;
    let mut checks = tokio::time::interval(LEADER_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        checks.tick().await;
        let leads = registry.lead().await;
        if leads && !leading {
            tracing::info!("leading: running webhook deliveries and scheduled collection");
            for hook in &webhooks {
                tasks.spawn(registry.clone().deliver_webhook(hook.clone()));
            }
            if let Some(every) = gc_interval {
                tasks.spawn(collect_periodically(registry.clone(), every));
            }
        } else if !leads && leading {
            tracing::warn!("no longer leading: background work stops here");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        leading = leads;
    }
}

/// Runs garbage collection every `every`, with the configured policy; at
/// once first if an interrupted run left work.
async fn collect_periodically(registry: Registry, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    if registry.unfinished_collection().await {
        let policy = registry.settings().gc.clone();
        if let Err(e) = registry.collect_garbage(&policy, false).await {
            tracing::warn!(error = %e, "finishing an interrupted garbage collection failed");
        }
    }
    loop {
        ticks.tick().await;
        let policy = registry.settings().gc.clone();
        if let Err(e) = registry.collect_garbage(&policy, false).await {
            tracing::warn!(error = %e, "scheduled garbage collection failed");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
