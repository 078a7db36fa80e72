"""Which images localcluster can run: only the workshop's own, in the project's Python environment.

There is no container runtime, so an image is not pulled but mapped to a local runtime. The
workshop image (`PROJECT_IMAGE`, or its repository without a tag, which means `:latest`) runs with
the virtualenv of `sys.executable` first on PATH; any other image is refused with a message that
says so, and the container stays Waiting in `ErrImagePull` / `ImagePullBackOff` as upstream.

A module of its own, below both its readers: the kubelet runs images, and the Knative revision
controller resolves them before any pod exists (upstream's digest resolution), so neither package
imports the other for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from localcluster.settings import PROJECT_IMAGE

PROJECT_REPOSITORY = PROJECT_IMAGE.rsplit(":", 1)[0]
#: The bin directory of the project's environment: `python`, `uvicorn`, `lab` ... resolve here first.
PROJECT_BIN = Path(sys.executable).parent


def runs_locally(image: str) -> bool:
    """True for the workshop image, with its configured tag or none (a bare name means `latest`)."""
    return image in (PROJECT_IMAGE, PROJECT_REPOSITORY)


def pull_error(image: str) -> str:
    """What the container's Waiting message and the Failed event say about an image it cannot run."""
    return (
        f"localcluster runs only the workshop image {PROJECT_IMAGE}; it cannot pull {image} — no container "
        "runtime (use a real cluster for other images)"
    )
