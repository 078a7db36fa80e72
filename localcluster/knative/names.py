"""The names of the objects Knative creates (kmeta.ChildName and the reconcilers' names packages)."""

from __future__ import annotations

import hashlib
import re

_LONGEST = 63
_MD5_LENGTH = 32
_HEAD = _LONGEST - _MD5_LENGTH
_TRAILING_NON_ALPHANUMERIC = re.compile(r"[^a-zA-Z0-9]+$")


def child_name(parent: str, suffix: str) -> str:
    """kmeta.ChildName: `parent + suffix`, or a hash-shortened form when that exceeds 63 characters."""
    if len(parent) <= _LONGEST - len(suffix):
        return parent + suffix
    if _HEAD - len(suffix) <= 0:
        digest = hashlib.md5((parent + suffix).encode(), usedforsecurity=False).hexdigest()
        shortened = parent[:_HEAD] + digest
        shortened += suffix[: max(0, _LONGEST - len(shortened))]
        return _TRAILING_NON_ALPHANUMERIC.sub("", shortened)
    digest = hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()
    return parent[: _HEAD - len(suffix)] + digest + suffix


def revision_name(configuration: str, generation: int) -> str:
    """`<configuration>-00001`: the Revision a Configuration's generation creates (resources/revision.go)."""
    return child_name(configuration, f"-{generation:05d}")


def deployment_name(revision: str) -> str:
    return child_name(revision, "-deployment")


def private_service_name(revision: str) -> str:
    """The ServerlessService's private Service: it selects the revision's pods, so its Endpoints are them."""
    return child_name(revision, "-private")
