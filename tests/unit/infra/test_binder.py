"""The Binder launch: repo2docker installs environment.yml, runs binder/postBuild once, and binder/start
before the notebook server. Checked statically (no Binder here): scripts that stop on errors, start
brings localcluster up and hands over to the server with its kubeconfig, the schemas come from the
pinned commits shared/ holds."""

from __future__ import annotations

import os
import subprocess

import pytest

from localcluster.settings import PROJECT_ROOT, Settings

BINDER = PROJECT_ROOT / "binder"


@pytest.mark.parametrize("name", ["postBuild", "start"])
def test_the_hooks_are_executable_strict_bash(name: str) -> None:
    script = BINDER / name
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True).returncode == 0


def test_start_brings_localcluster_up_then_execs_the_server() -> None:
    lines = [line for line in (BINDER / "start").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == 'exec "$@"'
    assert any(line.startswith("lab up") for line in lines)
    assert any("LAB_SHARED_DIR" in line for line in lines) and any("KUBECONFIG" in line for line in lines)


def test_post_build_fetches_the_schemas_shared_holds() -> None:
    text = (BINDER / "postBuild").read_text()
    readme = Settings.from_env().schemas_dir / "README.md"
    if readme.exists():  # the commits shared/ was made from are the ones Binder fetches
        for commit in ("98e5ef90aa7033797aa0a61ef97f3ff7e49a3944", "b8f8791d9653b2edc77a071d48887e582cfe84bf"):
            assert commit in readme.read_text() and commit in text
    served = {path.stem for path in Settings.from_env().schemas_dir.glob("*/*.yaml")}
    for plural in served:
        assert plural in text
