//! What an operator sees of each request: a request id (the client's
//! `X-Request-Id`, or one made here) echoed in the response and carried by
//! every log line of the request (a tracing span), one access-log line at
//! info level once the response body has been sent (or the client went
//! away), and the request metrics. Credentials are never logged: the line
//! holds the path without its query, and the user name, not how they signed
//! in.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tracing::Instrument;

use super::connections::ClientAddr;
use crate::api::{Caller, Route};
use crate::metrics::{Metrics, RequestLabels, RouteLabels};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The middleware (outermost, so that it sees every answer).
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let id = request_id(request.headers().get(&REQUEST_ID));
    let method = request.method().clone();
    let uri = request.uri().clone();
    let client = request.extensions().get::<ClientAddr>().map(|a| a.0);
    let span = tracing::info_span!("request", id = %id);
    let received = Arc::new(AtomicU64::new(0));
    let request = {
        let (parts, body) = request.into_parts();
        let counted = Tally {
            inner: body,
            seen: 0,
            done: Some(Box::new({
                let (received, metrics) = (Arc::clone(&received), Arc::clone(&metrics));
                move |n: u64, _: bool| {
                    received.store(n, Ordering::Relaxed);
                    metrics.received_bytes.inc_by(n);
                }
            })),
        };
        Request::from_parts(parts, Body::new(counted))
    };
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let status = response.status();
    let route = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| route_of(uri.path()), |r| r.0);
    let user = response.extensions().get::<Caller>().map(|c| c.0.clone());
    let (parts, body) = response.into_parts();
    let line = Line {
        method,
        uri,
        route,
        status: status.as_u16(),
        user,
        client,
        received,
        start,
        span,
        metrics,
    };
    let body = Tally {
        inner: body,
        seen: 0,
        done: Some(Box::new(move |sent, whole| line.write(sent, whole))),
    };
    Response::from_parts(parts, Body::new(body))
}

/// The client's request id when it is short printable ASCII, else a new one.
fn request_id(given: Option<&HeaderValue>) -> String {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

/// A new request id: 8 hex digits chosen at random once per process (so
/// that replicas differ), then a counter (so that making one costs no
/// system call).
fn new_request_id() -> String {
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_fields().0);
    format!("{process:08x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The route kind of an answer no endpoint gave (a probe, the token
/// service, or a request refused before routing: authentication, limits).
fn route_of(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/auth/token" => "token",
        p if p.starts_with("/v2") => "v2",
        p if p.starts_with("/api/v1") => "api",
        "/" | "/ui" => "ui",
        p if p.starts_with("/ui/") => "ui",
        _ => "other",
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// What the access-log line and the request metrics need, kept until the
/// response body is done.
struct Line {
    method: Method,
    uri: axum::http::Uri,
    route: &'static str,
    status: u16,
    user: Option<String>,
    client: Option<std::net::SocketAddr>,
    received: Arc<AtomicU64>,
    start: Instant,
    span: tracing::Span,
    metrics: Arc<Metrics>,
}

impl Line {
    fn write(self, sent: u64, whole: bool) {
        let took = self.start.elapsed();
        let method = method_name(&self.method);
        let m = &self.metrics;
        m.requests
            .get_or_create(&RequestLabels {
                route: self.route,
                method,
                status: self.status,
            })
            .inc();
        m.request_seconds
            .get_or_create(&RouteLabels {
                route: self.route,
                method,
            })
            .observe(took.as_secs_f64());
        m.sent_bytes.inc_by(sent);
        let _inside = self.span.enter();
        tracing::info!(
            target: "berth::access",
            method = %self.method,
            path = %self.uri.path(),
            route = self.route,
            status = self.status,
            bytes = sent,
            received = self.received.load(Ordering::Relaxed),
            ms = %format_args!("{:.3}", took.as_secs_f64() * 1000.0),
            user = self.user.as_deref().unwrap_or("-"),
            client = %self.client.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            complete = whole,
            "request"
        );
    }
}

type Done = Box<dyn FnOnce(u64, bool) + Send>;

/// A body that counts its bytes and, when it ends (or is dropped first: a
/// HEAD, a client gone), calls `done` with the count and whether it ended.
struct Tally {
    inner: Body,
    seen: u64,
    done: Option<Done>,
}

impl Tally {
    fn finish(&mut self, whole: bool) {
        if let Some(done) = self.done.take() {
            done(self.seen, whole);
        }
    }
}

impl http_body::Body for Tally {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let whole = http_body::Body::is_end_stream(&self.inner);
        self.finish(whole);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_taken_only_when_short_and_printable() {
        let given = |s: &str| request_id(Some(&HeaderValue::from_str(s).expect("header")));
        assert_eq!(given("abc-123"), "abc-123");
        for bad in ["", "has space", &"x".repeat(129)] {
            let made = given(bad);
            assert_eq!(made.len(), 24, "{bad:?} gave {made}");
            assert_ne!(made, bad);
        }
        assert_ne!(request_id(None), request_id(None));
    }
}
