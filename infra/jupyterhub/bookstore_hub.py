"""The hub's part of a class: each attendee's namespace gets its ServiceAccount, RoleBinding and quota.

Mounted into the hub as a file of `jupyterhub_config.d` (see values.yaml's `hub.extraFiles`), where
JupyterHub's config object `c` exists: it sets `KubeSpawner.modify_pod_hook`, which KubeSpawner calls
after it made the user's namespace (enable_user_namespaces) and before it creates the pod, so the
pod's ServiceAccount exists when the pod does. The objects come from the templates beside this file
(attendee-namespace.yaml.tmpl, instructor.yaml.tmpl), mounted with it; `render` is what both the hub and
the project's tests use, so what is tested is what the hub applies.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml

#: Where values.yaml mounts the templates in the hub (files of jupyterhub_config.d run without a __file__ of their own).
TEMPLATES = Path("/usr/local/etc/jupyterhub/bookstore")
#: Who gets the instructor role: JupyterHub admins and members of this JupyterHub group.
INSTRUCTORS_GROUP = "instructors"


def render(template: str, *, namespace: str, username: str) -> list[dict[str, Any]]:
    """The objects of a template for one user's namespace."""
    text = string.Template(template).substitute(namespace=namespace, username=username)
    return [document for document in yaml.safe_load_all(text) if document]


def objects_for(
    namespace: str, username: str, *, instructor: bool, templates: Path = TEMPLATES
) -> list[dict[str, Any]]:
    """Everything the hub makes for a user: the attendee's objects, and an instructor's binding."""
    objects = render((templates / "attendee-namespace.yaml.tmpl").read_text(), namespace=namespace, username=username)
    if instructor:
        objects += render((templates / "instructor.yaml.tmpl").read_text(), namespace=namespace, username=username)
    return objects


async def ensure_user_objects(spawner: Any, pod: Any) -> Any:
    """KubeSpawner's modify_pod_hook: create (or keep) the user's objects, then let the pod be made."""
    from kubernetes_asyncio import client, utils
    from kubernetes_asyncio.client.exceptions import ApiException

    user = spawner.user
    instructor = bool(user.admin) or INSTRUCTORS_GROUP in {group.name for group in user.groups}
    api = client.ApiClient()
    try:
        for obj in objects_for(spawner.namespace, user.name, instructor=instructor):
            try:
                await utils.create_from_dict(api, obj)
            except utils.FailToCreateError as failure:
                if any(not isinstance(exc, ApiException) or exc.status != 409 for exc in failure.api_exceptions):
                    raise
    finally:
        await api.close()
    return pod


config = globals().get("c")
if config is not None:  # loaded by JupyterHub from jupyterhub_config.d
    config.KubeSpawner.modify_pod_hook = ensure_user_objects
