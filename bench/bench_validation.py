"""What a write costs the API server before it is stored: validation and server-side apply.

Run: python -m bench.bench_validation   (a few seconds; no cluster, no network)

Every create, update and patch validates the whole object (target: well under a millisecond per
Deployment), and `kubectl apply --server-side` merges and records managedFields (target: a few
milliseconds for a Deployment with twenty environment variables).
"""

from __future__ import annotations

import copy
import time

from bench._stats import percentile, report
from localcluster.api.apply import server_side_apply
from localcluster.api.defaults import apply_defaults
from localcluster.api.resources import ResourceRegistry
from localcluster.api.schemas import SchemaIndex
from localcluster.api.validation import Validator
from localcluster.settings import Settings

OBJECTS = 500
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "storefront", "namespace": "bookstore", "labels": {"app": "storefront"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "storefront"}},
        "template": {
            "metadata": {"labels": {"app": "storefront"}},
            "spec": {
                "containers": [
                    {
                        "name": "storefront",
                        "image": "ghcr.io/cloud-native-bookstore/workshop:latest",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                    }
                ]
            },
        },
    },
}


def main() -> None:
    registry = ResourceRegistry.load(Settings().schemas_dir)
    validator = Validator(SchemaIndex(registry))
    resource_type = registry.by_kind("apps/v1", "Deployment")
    assert resource_type is not None
    template = copy.deepcopy(DEPLOYMENT)
    apply_defaults(resource_type, template)
    validator.validate(resource_type, "v1", copy.deepcopy(template), None)  # the schemas load once
    samples = []
    for obj in [copy.deepcopy(template) for _ in range(OBJECTS)]:
        started = time.perf_counter()
        validator.validate(resource_type, "v1", obj, None)
        samples.append(time.perf_counter() - started)
    report("validate a Deployment p50", percentile(samples, 0.5) * 1000, "ms")
    report("validate a Deployment p99", percentile(samples, 0.99) * 1000, "ms")

    index = SchemaIndex(registry)
    container = template["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": f"E{i}", "value": str(i)} for i in range(20)]
    current = None
    applies = []
    for revision in range(OBJECTS // 5):
        container["image"] = f"ghcr.io/cloud-native-bookstore/workshop:{revision}"
        started = time.perf_counter()
        current = server_side_apply(
            current,
            template,
            manager="kubectl",
            force=False,
            index=index,
            resource_type=resource_type,
            version=resource_type.storage_version,
            now="2026-12-01T00:00:00Z",
            subresource="",
        )
        applies.append(time.perf_counter() - started)
    report("server-side apply of a Deployment p50", percentile(applies, 0.5) * 1000, "ms")
    report("server-side apply of a Deployment p99", percentile(applies, 0.99) * 1000, "ms")


if __name__ == "__main__":
    main()
