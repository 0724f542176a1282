//! `GET /api/v1/lineage/{repository}/{reference}`: the lineage graph around a
//! model version (JSON, or DOT with `format=dot`), and `GET /api/v1/lineage`
//! with `dataset=`, `commit=` or `parent=`: the model versions built from it.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::api::query::Query;
use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::oci::{Digest, Reference, RepoName};
use crate::registry::Registry;
use crate::registry::lineage::{Direction, Graph, ModelQuery};

/// Depth of a graph query when none is asked for.
const DEFAULT_DEPTH: usize = 10;

pub async fn graph(
    State(registry): State<Registry>,
    Extension(access): Extension<Access>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    let result = match super::raw_rest(&uri, "/api/v1/lineage/") {
        Ok(rest) => graph_inner(&registry, &access, rest, &Query::parse(q.as_deref())).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn graph_inner(
    registry: &Registry,
    access: &Access,
    rest: &str,
    query: &Query,
) -> Result<Response> {
    let (repo, reference) = rest.rsplit_once('/').ok_or_else(|| {
        Error::NameInvalid("expected /api/v1/lineage/<repository>/<tag or digest>".into())
    })?;
    let repo = RepoName::parse(repo)?;
    access.require(&repo, Action::Pull)?;
    let reference = Reference::parse(reference)?;
    let direction = match query.get("direction") {
        None => Direction::Upstream,
        Some(d) => Direction::parse(d).ok_or_else(|| {
            Error::QueryInvalid(format!("direction {d:?}: upstream, downstream or both"))
        })?,
    };
    let depth = match query.get("depth") {
        None => DEFAULT_DEPTH,
        Some(d) => d
            .parse()
            .map_err(|_| Error::QueryInvalid(format!("depth {d:?} is not a number")))?,
    };
    let mut graph = registry
        .lineage_graph(&repo, &reference, direction, depth)
        .await?;
    // Nothing about repositories the caller cannot pull.
    graph.retain_nodes(|n| {
        n.repository
            .as_deref()
            .is_none_or(|r| RepoName::parse(r).is_ok_and(|r| access.allows(&r, Action::Pull)))
    });
    Ok(match query.get("format") {
        None | Some("json") => Json(graph).into_response(),
        Some("dot") => {
            let mut r = dot(&graph).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/vnd.graphviz"),
            );
            r
        }
        Some(f) => return Err(Error::QueryInvalid(format!("format {f:?}: json or dot"))),
    })
}

pub async fn models(
    State(registry): State<Registry>,
    Extension(access): Extension<Access>,
    RawQuery(q): RawQuery,
) -> Response {
    models_inner(&registry, &access, &Query::parse(q.as_deref()))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn models_inner(registry: &Registry, access: &Access, query: &Query) -> Result<Response> {
    let selected = match (
        query.get("dataset"),
        query.get("commit"),
        query.get("parent"),
    ) {
        (Some(d), None, None) => ModelQuery::Dataset(Digest::parse(d)?),
        (None, Some(c), None) => ModelQuery::Commit(c.to_owned()),
        (None, None, Some(p)) => ModelQuery::Parent(Digest::parse(p)?),
        _ => {
            return Err(Error::QueryInvalid(
                "give exactly one of dataset, commit or parent".into(),
            ));
        }
    };
    let models: Vec<_> = registry
        .lineage_models(selected)
        .await?
        .into_iter()
        .filter(|m| RepoName::parse(&m.repository).is_ok_and(|r| access.allows(&r, Action::Pull)))
        .collect();
    Ok(Json(serde_json::json!({ "models": models })).into_response())
}

/// The graph in Graphviz DOT: datasets as cylinders, code as notes, runs as
/// ellipses, the queried node in bold.
fn dot(graph: &Graph) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from(
        "digraph lineage {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    for n in &graph.nodes {
        let shape = match n.kind {
            "dataset" | "external" => "cylinder",
            "code" => "note",
            "run" => "ellipse",
            _ => "box",
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\", shape={shape}{}];\n",
            quote(&n.id),
            quote(&n.label()),
            if n.id == graph.root {
                ", style=bold"
            } else {
                ""
            }
        ));
    }
    for e in &graph.edges {
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
            quote(&e.from),
            quote(&e.to),
            quote(&e.relation)
        ));
    }
    out.push_str("}\n");
    out
}
