"""pyproject.toml and environment.yml must pin the same packages at the same versions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_carries_exactly_the_pyproject_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pinned |= set(extra)
    assert all("==" in requirement for requirement in pinned), "every dependency is pinned exactly"
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert {line for line in pip_section if "==" in line} == pinned
