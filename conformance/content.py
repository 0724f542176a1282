"""Builds the OCI layouts the client checks push: a two-platform index over two
tagged images in one layout, tagged "multi". Usage: content.py LAYOUT AMD64_TAG ARM64_TAG."""

import hashlib
import json
import sys
from pathlib import Path

layout, amd64, arm64 = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
index_path = layout / "index.json"
index = json.loads(index_path.read_text())
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
entries = []
for tag, arch in ((amd64, "amd64"), (arm64, "arm64")):
    d = dict(by_tag[tag])
    d.pop("annotations", None)
    d["platform"] = {"architecture": arch, "os": "linux"}
    entries.append(d)
blob = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": entries}, indent=2).encode()
digest = hashlib.sha256(blob).hexdigest()
(layout / "blobs" / "sha256" / digest).write_bytes(blob)
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": f"sha256:{digest}", "size": len(blob),
                           "annotations": {"org.opencontainers.image.ref.name": "multi"}})
index_path.write_text(json.dumps(index))
