"""Lab 03 on a real localcluster: each check fails before its step and passes after; the challenge breaks
the shop as described and its fix mends it; reset removes the lab, claims included."""

from __future__ import annotations

import pytest

from checkers import Status, run_check
from checkers.lab03_transactions import (
    CHALLENGE_VICTIMS,
    EVERYONE,
    LAB_ID,
    audit_shop,
    challenge_solved,
    look_at_coordinator,
    reset,
    start_challenge,
)
from labkit.connection import Connection
from tests.integration.lab_support import prove_each_step, verdicts

pytestmark = pytest.mark.integration


def test_each_check_fails_before_its_step_and_passes_after(ctx: Connection) -> None:
    assert prove_each_step(ctx, "03") == ["03.1", "03.2", "03.3", "03.4", "03.5", "03.6", "03.7"]
    assert set(verdicts(ctx, "03").values()) == {Status.PASSED}


def test_the_challenge_charges_customers_for_nothing_until_it_is_fixed(ctx: Connection) -> None:
    start_challenge(ctx)
    broken = audit_shop(ctx.http, EVERYONE).breaks()
    assert any(name in line for line in broken for name in CHALLENGE_VICTIMS), broken
    assert run_check(challenge_solved, ctx).status is Status.FAILED
    assert challenge_solved.solution_step is not None
    challenge_solved.solution_step(ctx)
    assert run_check(challenge_solved, ctx).status is Status.PASSED
    assert look_at_coordinator(ctx.http).unfinished == 0


def test_reset_removes_the_lab(ctx: Connection) -> None:
    reset(ctx)
    selector = f"bookstore.workshop/lab={LAB_ID}"
    assert not ctx.apps.list_namespaced_deployment(ctx.namespace, label_selector=selector).items
    assert not ctx.core.list_namespaced_persistent_volume_claim(ctx.namespace, label_selector=selector).items
    assert verdicts(ctx, "03")["03.1"] is Status.FAILED
