"""Vendor KubeRay's CRDs as JSON Schemas for check-jsonschema (the suite validates every
manifest under deploy/kuberay against them).

    python deploy/kuberay/vendor_schemas.py /path/to/kuberay v1.7.0

Reads `ray-operator/config/crd/bases/ray.io_{rayservices,rayjobs,raycronjobs}.yaml` at the
given tag of a KubeRay checkout (git show), takes each served version's openAPIV3Schema, and
makes it strict: an object with declared properties and no
`x-kubernetes-preserve-unknown-fields` rejects unknown fields, so a misspelt field fails the
suite instead of being pruned silently by the API server. Writes schemas/<kind>.json and
schemas/SOURCE.json (the tag, commit and paths)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CRDS = {"RayService": "rayservices", "RayJob": "rayjobs", "RayCronJob": "raycronjobs"}


def strict(node: Any) -> Any:
    """The schema with additionalProperties false wherever Kubernetes would prune."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):  # fmt: skip
        out["additionalProperties"] = False
    return out


def schema_of(crd: dict[str, Any], kind: str) -> dict[str, Any]:
    """One JSON Schema for the CRD's storage version, apiVersion and kind pinned."""
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = strict(version["schema"]["openAPIV3Schema"])
    group = crd["spec"]["group"]
    schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta is not in the CRD
    schema["required"] = sorted({"apiVersion", "kind", "metadata", "spec"})
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": kind, **schema}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    checkout, tag = Path(sys.argv[1]), sys.argv[2]
    git = ["git", "-C", str(checkout)]
    commit = subprocess.run([*git, "rev-list", "-n1", tag], check=True, capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    source: dict[str, Any] = {"project": "https://github.com/ray-project/kuberay", "tag": tag,
                              "commit": commit, "files": {}}  # fmt: skip
    for kind, plural in CRDS.items():
        path = f"ray-operator/config/crd/bases/ray.io_{plural}.yaml"
        text = subprocess.run([*git, "show", f"{tag}:{path}"], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip
        schema = schema_of(yaml.safe_load(text), kind)
        (HERE / "schemas" / f"{kind.lower()}.json").write_text(json.dumps(schema) + "\n")
        source["files"][kind] = path
    (HERE / "schemas" / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
    print(f"vendored {', '.join(CRDS)} from KubeRay {tag} ({commit[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
