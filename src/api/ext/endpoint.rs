//! Every `/api/v1` path parsed once into an [`ExtEndpoint`], with the scope
//! it needs, as `/v2` paths are by `api::endpoint`: one table, one test.

use axum::http::Method;

use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::oci::{Reference, RepoName, Tag};

const PREFIX: &str = "/api/v1/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtEndpoint {
    /// `lineage?dataset=|commit=|parent=`: model versions built from something.
    Models,
    /// `lineage/<repository>/<reference>`: the graph around a model version.
    Graph(RepoName, Reference),
    /// `repositories/<repository>/promote`
    Promote(RepoName),
    /// `repositories/<repository>/rollback`
    Rollback(RepoName),
    /// `repositories/<repository>/tags/<tag>/history`
    History(RepoName, Tag),
    /// `repositories/<repository>/diff?from=&to=`
    Diff(RepoName),
    /// `repositories?q=&n=&last=`: repositories with their counts and size.
    Repositories,
    /// `repositories/<repository>/tags?n=&last=`: tags with what they point at.
    Tags(RepoName),
    /// `events?after=&n=`
    Events,
    /// `gc[?dry_run=true]`
    Gc,
    /// `repositories/<repository>/manifests/<reference>/scan`: the latest report.
    ScanReport(RepoName, Reference),
    /// `repositories/<repository>/scan`: scan one version now.
    Scan(RepoName),
    /// `scan`: queue every version that has no report.
    ScanAll,
    /// `session`: who the caller is, and whether anyone may look without
    /// signing in (what the web UI needs to know before it asks).
    Session,
}

/// What an endpoint needs of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<'a> {
    /// This action on this repository.
    Repository(&'a RepoName, Action),
    /// Anyone signed in (anyone at all without authentication); the answer
    /// holds only what the caller may pull.
    Filtered,
    /// An administrator.
    Admin,
}

impl ExtEndpoint {
    /// The endpoint's kind, for metrics and the access log (never the path).
    pub fn kind(&self) -> &'static str {
        match self {
            ExtEndpoint::Models => "lineage_query",
            ExtEndpoint::Graph(..) => "lineage_graph",
            ExtEndpoint::Promote(_) => "promote",
            ExtEndpoint::Rollback(_) => "rollback",
            ExtEndpoint::History(..) => "history",
            ExtEndpoint::Diff(_) => "diff",
            ExtEndpoint::Repositories => "repositories",
            ExtEndpoint::Tags(_) => "tag_details",
            ExtEndpoint::Events => "events",
            ExtEndpoint::Gc => "gc",
            ExtEndpoint::ScanReport(..) => "scan_report",
            ExtEndpoint::Scan(_) => "scan",
            ExtEndpoint::ScanAll => "scan_all",
            ExtEndpoint::Session => "session",
        }
    }

    /// Parses a request path. Percent-encoding is refused, as for `/v2/`, so
    /// that an encoded slash cannot pose as one.
    pub fn parse(path: &str) -> Result<ExtEndpoint> {
        let rest = path.strip_prefix(PREFIX).ok_or(Error::RouteUnknown)?;
        if rest.contains('%') {
            return Err(Error::NameInvalid(
                "percent-encoded characters are not allowed in paths".into(),
            ));
        }
        match rest {
            "lineage" => return Ok(ExtEndpoint::Models),
            "events" => return Ok(ExtEndpoint::Events),
            "gc" => return Ok(ExtEndpoint::Gc),
            "scan" => return Ok(ExtEndpoint::ScanAll),
            "repositories" => return Ok(ExtEndpoint::Repositories),
            "session" => return Ok(ExtEndpoint::Session),
            _ => {}
        }
        if let Some(graph) = rest.strip_prefix("lineage/") {
            let (repo, reference) = graph.rsplit_once('/').ok_or_else(|| {
                Error::NameInvalid("expected /api/v1/lineage/<repository>/<tag or digest>".into())
            })?;
            return Ok(ExtEndpoint::Graph(
                RepoName::parse(repo)?,
                Reference::parse(reference)?,
            ));
        }
        let repo_path = rest
            .strip_prefix("repositories/")
            .ok_or(Error::RouteUnknown)?;
        let in_repo = |suffix: &str| repo_path.strip_suffix(suffix).map(RepoName::parse);
        if let Some(repo) = in_repo("/promote") {
            return Ok(ExtEndpoint::Promote(repo?));
        }
        if let Some(repo) = in_repo("/rollback") {
            return Ok(ExtEndpoint::Rollback(repo?));
        }
        if let Some(repo) = in_repo("/diff") {
            return Ok(ExtEndpoint::Diff(repo?));
        }
        if let Some(repo) = in_repo("/tags") {
            return Ok(ExtEndpoint::Tags(repo?));
        }
        if let Some(before) = repo_path.strip_suffix("/scan") {
            if let Some((repo, reference)) = before.rsplit_once("/manifests/") {
                return Ok(ExtEndpoint::ScanReport(
                    RepoName::parse(repo)?,
                    Reference::parse(reference)?,
                ));
            }
            return Ok(ExtEndpoint::Scan(RepoName::parse(before)?));
        }
        let before = repo_path
            .strip_suffix("/history")
            .ok_or(Error::RouteUnknown)?;
        let (repo, tag) = before.rsplit_once("/tags/").ok_or(Error::RouteUnknown)?;
        Ok(ExtEndpoint::History(
            RepoName::parse(repo)?,
            Tag::parse(tag)?,
        ))
    }

    /// The method it answers.
    pub fn method(&self) -> Method {
        match self {
            ExtEndpoint::Promote(_)
            | ExtEndpoint::Rollback(_)
            | ExtEndpoint::Gc
            | ExtEndpoint::Scan(_)
            | ExtEndpoint::ScanAll => Method::POST,
            _ => Method::GET,
        }
    }

    /// What the caller needs. Moving environment tags is its own right, so
    /// that "may push but not promote to production" can be said; reading
    /// lineage, history and release notes needs pull.
    pub fn scope(&self) -> Scope<'_> {
        match self {
            ExtEndpoint::Promote(repo) | ExtEndpoint::Rollback(repo) => {
                Scope::Repository(repo, Action::Promote)
            }
            ExtEndpoint::Graph(repo, _)
            | ExtEndpoint::History(repo, _)
            | ExtEndpoint::Diff(repo)
            | ExtEndpoint::Tags(repo)
            | ExtEndpoint::ScanReport(repo, _) => Scope::Repository(repo, Action::Pull),
            // A scan writes its report into the repository.
            ExtEndpoint::Scan(repo) => Scope::Repository(repo, Action::Push),
            ExtEndpoint::Models
            | ExtEndpoint::Events
            | ExtEndpoint::Repositories
            | ExtEndpoint::Session => Scope::Filtered,
            ExtEndpoint::Gc | ExtEndpoint::ScanAll => Scope::Admin,
        }
    }

    /// Refuses a caller without the scope, and a method the endpoint does
    /// not answer (after the scope: a method is no way to probe rights).
    pub fn authorize(&self, access: &Access, method: &Method) -> Result<()> {
        match self.scope() {
            Scope::Repository(repo, action) => access.require(repo, action)?,
            Scope::Filtered => {}
            Scope::Admin => access.require_admin()?,
        }
        let allowed = self.method();
        if *method == allowed || (allowed == Method::GET && *method == Method::HEAD) {
            Ok(())
        } else {
            Err(Error::MethodNotAllowed {
                allow: if allowed == Method::POST {
                    "POST"
                } else {
                    "GET"
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The whole table: each path, what it parses to, and what it needs.
    #[test]
    fn every_path_parses_to_one_endpoint_with_its_scope() {
        let repo = |s: &str| RepoName::parse(s).expect("repo");
        let table = [
            (
                "/api/v1/lineage",
                ExtEndpoint::Models,
                "filtered",
                Method::GET,
            ),
            (
                "/api/v1/events",
                ExtEndpoint::Events,
                "filtered",
                Method::GET,
            ),
            ("/api/v1/gc", ExtEndpoint::Gc, "admin", Method::POST),
            (
                "/api/v1/repositories",
                ExtEndpoint::Repositories,
                "filtered",
                Method::GET,
            ),
            (
                "/api/v1/session",
                ExtEndpoint::Session,
                "filtered",
                Method::GET,
            ),
            (
                "/api/v1/repositories/a/tags/tags",
                ExtEndpoint::Tags(repo("a/tags")),
                "pull",
                Method::GET,
            ),
            ("/api/v1/scan", ExtEndpoint::ScanAll, "admin", Method::POST),
            (
                "/api/v1/repositories/models/churn/scan",
                ExtEndpoint::Scan(repo("models/churn")),
                "push",
                Method::POST,
            ),
            (
                "/api/v1/repositories/models/manifests/manifests/v1/scan",
                ExtEndpoint::ScanReport(
                    repo("models/manifests"),
                    Reference::parse("v1").expect("tag"),
                ),
                "pull",
                Method::GET,
            ),
            (
                "/api/v1/lineage/models/churn/v1",
                ExtEndpoint::Graph(repo("models/churn"), Reference::parse("v1").expect("tag")),
                "pull",
                Method::GET,
            ),
            (
                "/api/v1/repositories/models/churn/promote",
                ExtEndpoint::Promote(repo("models/churn")),
                "promote",
                Method::POST,
            ),
            (
                "/api/v1/repositories/a/rollback",
                ExtEndpoint::Rollback(repo("a")),
                "promote",
                Method::POST,
            ),
            (
                "/api/v1/repositories/a/b/diff",
                ExtEndpoint::Diff(repo("a/b")),
                "pull",
                Method::GET,
            ),
            (
                "/api/v1/repositories/a/tags/tags/production/history",
                ExtEndpoint::History(repo("a/tags"), Tag::parse("production").expect("tag")),
                "pull",
                Method::GET,
            ),
        ];
        for (path, want, scope, method) in table {
            let got = ExtEndpoint::parse(path).expect(path);
            assert_eq!(got, want, "{path}");
            let needs = match got.scope() {
                Scope::Repository(_, Action::Pull) => "pull",
                Scope::Repository(_, Action::Promote) => "promote",
                Scope::Repository(_, Action::Push) => "push",
                Scope::Repository(_, _) => "other",
                Scope::Filtered => "filtered",
                Scope::Admin => "admin",
            };
            assert_eq!(needs, scope, "{path}");
            assert_eq!(got.method(), method, "{path}");
        }
    }

    #[test]
    fn paths_that_name_nothing_are_refused() {
        for path in [
            "/api/v1/",
            "/api/v1/nothing",
            "/api/v1/repositories/a",
            "/api/v1/repositories/a/tags/x",
            "/api/v1/repositories/a/history",
            "/api/v2/events",
        ] {
            assert!(
                matches!(ExtEndpoint::parse(path), Err(Error::RouteUnknown)),
                "{path}"
            );
        }
        for path in [
            "/api/v1/lineage/noreference",
            "/api/v1/lineage/Bad/v1",
            "/api/v1/repositories/a%2Fb/promote",
            "/api/v1/repositories/a/tags/bad tag/history",
        ] {
            assert!(ExtEndpoint::parse(path).is_err(), "{path}");
        }
    }
}
