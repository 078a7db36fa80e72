"""The two answers of the Kubernetes API that checks treat as states, not errors: 404 on a read, 404 on a delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


def read_or_none(read: Callable[[], T]) -> T | None:
    """What `read` returns, or None when the object is not there (404); any other error is raised."""
    try:
        return read()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def ignore_missing(delete: Callable[[], object]) -> None:
    """Run `delete`; an object already gone (404) is what was wanted."""
    read_or_none(delete)
