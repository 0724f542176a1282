//! `GET /api/v1/events?after=<id>&n=`: the event log, oldest first, in CNCF
//! Distribution's notification envelope.

use axum::Json;
use axum::response::{IntoResponse, Response};

use crate::api::query::Query;
use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::registry::Event;
use crate::registry::Registry;
use crate::registry::events::Envelope;

const MAX_PAGE: usize = 1000;

/// Rows read at most per request while looking for events the caller may
/// see; past that the page ends early and its `Link` goes on from there.
const MAX_SCAN: usize = 50 * MAX_PAGE;

/// Administrators see every event; others only those of repositories they
/// may pull. Hidden events are skipped before the page is cut, so a page is
/// short only at the end of the log (or when the scan limit is reached, and
/// then `Link` says where to go on).
pub async fn list(registry: &Registry, access: &Access, query: &Query) -> Result<Response> {
    let mut after = query
        .get("after")
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| Error::QueryInvalid(format!("after {a:?} is not an event id")))
        })
        .transpose()?
        .unwrap_or(0);
    let n = query.page_size()?.unwrap_or(100).min(MAX_PAGE);
    let all = access.require_admin().is_ok();
    let visible = |e: &Event| all || access.allows(&e.repo, Action::Pull);
    // `after` moves over every row looked at; `more` when the log may go on.
    let (mut events, mut scanned, mut more) = (Vec::new(), 0, false);
    while events.len() < n {
        let want = if all { n - events.len() } else { MAX_PAGE };
        let read = registry.events_after(after, want).await?;
        let end = read.len() < want;
        for e in read {
            after = e.id;
            scanned += 1;
            if visible(&e) {
                events.push(e);
                if events.len() == n {
                    break;
                }
            }
        }
        if events.len() == n {
            more = true;
        } else if end {
            break;
        }
        if scanned >= MAX_SCAN {
            more = true;
            break;
        }
    }
    let mut response = Json(Envelope::of(&events)).into_response();
    if more {
        super::link_next(
            &mut response,
            &format!("/api/v1/events?after={after}&n={n}"),
        );
    }
    Ok(response)
}
