"""A 404 is a state the checks read (missing, or already deleted); every other API error still surfaces."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from checkers._api import ignore_missing, read_or_none


def refuse(status: int) -> object:
    raise ApiException(status=status, reason="refused")


def test_a_missing_object_reads_as_none_and_deletes_as_done() -> None:
    assert read_or_none(lambda: {"kind": "ConfigMap"}) == {"kind": "ConfigMap"}
    assert read_or_none(lambda: refuse(404)) is None
    ignore_missing(lambda: refuse(404))


def test_other_errors_are_not_hidden() -> None:
    with pytest.raises(ApiException):
        read_or_none(lambda: refuse(403))
    with pytest.raises(ApiException):
        ignore_missing(lambda: refuse(500))
