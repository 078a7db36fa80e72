"""A lab whose overlay patches the base is repaired from that overlay, by a command that works from anywhere."""

from __future__ import annotations

import re
from pathlib import Path

from checkers.diagnosis import Problem, overlay_fix, overlay_fixes
from labkit.kustomize import overlay


def test_a_workload_is_put_back_with_every_object_of_its_app_from_the_labs_overlay() -> None:
    fix = overlay_fix("05-mesh", "storefront-v2")
    (command,) = re.findall(r"`([^`]+)`", fix)
    _, _, _, directory, _, selector = command.split()
    assert Path(directory).is_absolute() and Path(directory).name == "05-mesh"
    assert selector == "app=storefront"  # v2 is the storefront's app: its Deployment, v1's and the Service
    chosen = [o for o in overlay("05-mesh") if (o["metadata"].get("labels") or {}).get("app") == "storefront"]
    assert {"storefront-v2", "storefront"} <= {o["metadata"]["name"] for o in chosen}


def test_what_a_missing_or_crashing_workload_needs_comes_from_the_overlay() -> None:
    fixes = overlay_fixes("03-transactions", "tc")
    assert fixes[Problem.NOT_FOUND] == overlay_fix("03-transactions", "tc")
    assert "-l app=tc" in fixes[Problem.CRASH_LOOP]
    assert fixes[Problem.CRASH_LOOP].startswith("If you changed its Deployment, put back")
