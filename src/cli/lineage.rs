//! `berth lineage REPO:TAG|REPO@DIGEST`: what a model came from (or, with
//! `--downstream`, what was built from it), as a tree, JSON or DOT.

use std::collections::HashMap;

use serde_json::Value;

use super::client::{self, DEFAULT_URL};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Tree,
    Json,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model version: REPOSITORY:TAG or REPOSITORY@DIGEST.
    reference: String,
    /// Show what was built from it instead of what it came from.
    #[arg(long, conflicts_with = "both")]
    downstream: bool,
    /// Show both directions.
    #[arg(long)]
    both: bool,
    /// How many steps to follow.
    #[arg(long, default_value_t = 10)]
    depth: usize,
    #[arg(long, value_enum, default_value_t = Format::Tree)]
    format: Format,
    /// The registry.
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let (repo, reference) = client::split_reference(&args.reference)?;
    let direction = match (args.downstream, args.both) {
        (_, true) => "both",
        (true, _) => "downstream",
        _ => "upstream",
    };
    let format = match args.format {
        Format::Dot => "dot",
        _ => "json",
    };
    let path = format!(
        "/api/v1/lineage/{repo}/{reference}?direction={direction}&depth={}&format={format}",
        args.depth
    );
    let body = client::get(&args.url, &path).await?;
    match args.format {
        Format::Json | Format::Dot => println!("{body}"),
        Format::Tree => {
            let graph: Value = serde_json::from_str(&body)
                .map_err(|e| Error::Internal(format!("unexpected answer: {e}")))?;
            print!("{}", render_tree(&graph, direction));
        }
    }
    Ok(())
}

/// Renders a graph as an indented tree from its root: inputs (upstream)
/// or outputs (downstream) as children.
pub fn render_tree(graph: &Value, direction: &str) -> String {
    let empty = Vec::new();
    let nodes: HashMap<&str, &Value> = graph["nodes"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let edges = graph["edges"].as_array().unwrap_or(&empty);
    let root = graph["root"].as_str().unwrap_or_default();
    let mut out = format!("{}\n", label(nodes.get(root).copied()));
    let walk = |up: bool, out: &mut String| {
        let mut stack = vec![(root.to_owned(), String::new(), 0usize)];
        let mut seen = std::collections::HashSet::new();
        while let Some((id, indent, depth)) = stack.pop() {
            if !seen.insert(id.clone()) || depth > 64 {
                continue;
            }
            let children: Vec<(&str, &str)> = edges
                .iter()
                .filter_map(|e| {
                    let (from, to, rel) = (
                        e["from"].as_str()?,
                        e["to"].as_str()?,
                        e["relation"].as_str()?,
                    );
                    if up && to == id {
                        Some((from, rel))
                    } else if !up && from == id {
                        Some((to, rel))
                    } else {
                        None
                    }
                })
                .collect();
            let count = children.len();
            let mut next = Vec::new();
            for (i, (child, rel)) in children.into_iter().enumerate() {
                let last = i + 1 == count;
                let branch = if last { "└── " } else { "├── " };
                out.push_str(&format!(
                    "{indent}{branch}{rel}: {}\n",
                    label(nodes.get(child).copied())
                ));
                let child_indent = format!("{indent}{}", if last { "    " } else { "│   " });
                next.push((child.to_owned(), child_indent, depth + 1));
            }
            stack.extend(next.into_iter().rev());
        }
    };
    if direction != "downstream" {
        walk(true, &mut out);
    }
    if direction != "upstream" {
        if direction == "both" {
            out.push_str("built from it:\n");
        }
        walk(false, &mut out);
    }
    out
}

/// `sha256:` and the first 12 hex digits, as `docker images` shortens ids.
fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |colon| colon + 1 + 12);
    digest.get(..end).unwrap_or(digest)
}

fn label(node: Option<&Value>) -> String {
    let Some(n) = node else { return "?".into() };
    let s = |k: &str| n[k].as_str().map(str::to_owned);
    let tags: Vec<&str> = n["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let kind = s("kind").unwrap_or_default();
    let mut text = match (s("repository"), s("digest")) {
        // Tags move: the digest says which version this node is.
        (Some(r), Some(d)) if !tags.is_empty() => {
            format!("{r}:{} ({})", tags.join(","), short_digest(&d))
        }
        (Some(r), None) if !tags.is_empty() => format!("{r}:{}", tags.join(",")),
        (Some(r), Some(d)) => format!("{r}@{d}"),
        (None, Some(d)) => d,
        _ => s("name")
            .or_else(|| s("uri"))
            .or_else(|| s("id"))
            .unwrap_or_default(),
    };
    if let Some(uri) = s("uri").filter(|u| !text.contains(u.as_str())) {
        text.push_str(&format!(" <{uri}>"));
    }
    if n["present"] == Value::Bool(false) {
        text.push_str(" (not in this registry)");
    }
    format!("[{kind}] {text}")
}
