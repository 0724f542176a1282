//! `GET /api/v1/lineage/{repository}/{reference}`: the lineage graph around a
//! model version (JSON, or DOT with `format=dot`), and `GET /api/v1/lineage`
//! with `dataset=`, `commit=` or `parent=`: the model versions built from it.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::query::Query;
use crate::auth::{Access, Action};
use crate::error::{Error, Result};
use crate::oci::{Digest, Reference, RepoName};
use crate::registry::Registry;
use crate::registry::lineage::{Direction, Graph, ModelQuery, NodeKind};

/// Depth of a graph query when none is asked for.
const DEFAULT_DEPTH: usize = 10;

pub async fn graph(
    registry: &Registry,
    access: &Access,
    repo: &RepoName,
    reference: &Reference,
    query: &Query,
) -> Result<Response> {
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
        .lineage_graph(repo, reference, direction, depth)
        .await?;
    // Nothing about repositories the caller cannot pull.
    graph.retain_nodes(|n| {
        n.repository
            .as_ref()
            .is_none_or(|r| access.allows(r, Action::Pull))
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

pub async fn models(registry: &Registry, access: &Access, query: &Query) -> Result<Response> {
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
        .filter(|m| access.allows(&m.repository, Action::Pull))
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
            NodeKind::Dataset | NodeKind::External => "cylinder",
            NodeKind::Code => "note",
            NodeKind::Run => "ellipse",
            NodeKind::Model => "box",
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
