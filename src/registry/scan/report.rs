//! The scan report: what each layer of a version holds, the document
//! attached to the version as a referrer
//! (`schemas/scan.v1.schema.json`).

use serde::{Deserialize, Serialize};

use super::formats::Found;
use super::imports::Verdict;

/// A version's scan report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScanReport {
    /// What made it: `berth <version>`.
    pub scanner: String,
    /// The manifest scanned.
    pub subject: String,
    /// When (RFC 3339).
    pub scanned_at: String,
    /// The worst verdict over the layers.
    pub verdict: Verdict,
    pub layers: Vec<LayerReport>,
}

/// One layer's part of the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerReport {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub verdict: Verdict,
    /// Pickles, PyTorch files, object arrays and safetensors found.
    pub files: Vec<Found>,
    /// Other files looked at (nothing to scan in them).
    pub other_files: u64,
    /// Found files beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unlisted: u64,
    /// Why the layer was not read whole, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ScanReport {
    /// One line per layer whose verdict is `refuse_from` or worse: the
    /// layer, then each such file and what it imports that is refused.
    pub fn problems(&self, refuse_from: Verdict) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| l.verdict >= refuse_from)
            .map(|l| {
                let name = l
                    .title
                    .as_deref()
                    .map_or(String::new(), |t| format!(" ({t})"));
                let mut why: Vec<String> = l
                    .files
                    .iter()
                    .filter(|f| f.verdict >= refuse_from)
                    .map(|f| {
                        let imports: Vec<String> = f
                            .imports
                            .iter()
                            .filter(|i| i.class >= refuse_from)
                            .map(|i| format!("{}.{}", i.module, i.name))
                            .collect();
                        let mut said = format!("{} is {}", f.path, f.verdict.as_str());
                        if !imports.is_empty() {
                            said.push_str(&format!(", imports {}", imports.join(", ")));
                        }
                        if let Some(p) = &f.problem {
                            said.push_str(&format!(" ({p})"));
                        }
                        said
                    })
                    .collect();
                if let Some(incomplete) = &l.incomplete {
                    why.push(incomplete.clone());
                }
                format!("layer {}{name}: {}", l.digest, why.join("; "))
            })
            .collect()
    }
}
