"""securityContext, as far as processes of one machine can honour it, and said plainly where they cannot.

What the kubelet does with each field (the pod's, overridden by the container's where both exist):

* ``runAsNonRoot``: checked as upstream's ``verifyRunAsNonRoot``: ``runAsUser: 0`` is refused with
  "container's runAsUser breaks non-root policy", and without ``runAsUser`` a container whose image
  would run as root is refused with "container has runAsNonRoot and image will run as root"; both
  are ``CreateContainerConfigError``. The workshop image runs as localcluster's own user.
* ``runAsUser``, ``runAsGroup``, ``supplementalGroups``, ``fsGroup``: when localcluster runs as root,
  the container's processes run as that user and group with those groups (``fsGroup`` among them;
  without ``runAsGroup``, the user's group in ``/etc/passwd``, else 0, as a container runtime does),
  and volumes are group-owned by ``fsGroup`` (setgid directories, group read/write, read only for
  Secrets and ConfigMaps), as the kubelet's ``SetVolumeOwnership`` (all of each volume, or with
  ``fsGroupChangePolicy: OnRootMismatch`` only when its top directory is not right already). A user
  must be able to reach what the container runs: the Python environment, the pod's directories, its
  volumes. When a directory on the way is closed to it (a home directory of mode 0700, say), the
  container runs as localcluster's user instead and a Warning event names the directory. When
  localcluster is not root it cannot switch users at all: the container runs as localcluster's user
  and a Warning event says so.
* ``readOnlyRootFilesystem``: there is no container image filesystem to make read-only; the process
  can write wherever its user may on this machine. A Warning event says so.
* ``capabilities``: a process that runs as a user other than root holds no capabilities (the kernel
  drops them when root switches user), so ``drop`` is met; ``add`` is never granted. A container
  that runs as root keeps all of root's capabilities, whatever ``drop`` says. A Warning event says
  which of these applies.
* ``allowPrivilegeEscalation: false`` (no_new_privs) is not set on the process; the same event says so.

Every decision is a function of the pod, the container and the node's user (:class:`NodeUser`), so it
can be tested as any user; what a user can reach is asked of ``can_reach``.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.kubelet._env import ContainerConfigError

#: The Warning events' reason.
EVENT_REASON = "SecurityContext"


@dataclass(frozen=True)
class NodeUser:
    """Who localcluster runs as: its containers run as this user unless it is root and may switch."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    @classmethod
    def current(cls) -> NodeUser:
        return cls(os.geteuid(), os.getegid(), frozenset(os.getgroups()))

    @property
    def root(self) -> bool:
        return self.uid == 0


@dataclass(frozen=True)
class RunAs:
    """The identity a container's processes get: user, primary group, supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def process_options(self) -> dict[str, Any]:
        """Keyword arguments for `subprocess`/`asyncio.create_subprocess_exec` that switch to this identity."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


@dataclass(frozen=True)
class SecurityPlan:
    """What the kubelet does for one container: whom it runs as (None: localcluster's user) and what it says."""

    run_as: RunAs | None
    warnings: tuple[str, ...] = ()


#: Why `run_as` cannot run the container (the first directory in its way), or None if it can.
CanReach = Callable[[RunAs], str | None]


def effective(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The container's securityContext over the pod's, for the fields both have (DetermineEffectiveSecurityContext)."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    container_context = container.get("securityContext") or {}
    merged = {key: pod_context[key] for key in ("runAsUser", "runAsGroup", "runAsNonRoot") if key in pod_context}
    merged.update(container_context)
    return merged


def plan(pod: dict[str, Any], container: dict[str, Any], node: NodeUser, can_reach: CanReach) -> SecurityPlan:
    """Whom the container runs as and the warnings to record; ContainerConfigError where upstream refuses."""
    context = effective(pod, container)
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    name = container["name"]
    _verify_run_as_non_root(pod, name, context, node)
    wanted = _wanted_identity(context, pod_context, node)
    warnings: list[str] = []
    run_as: RunAs | None = None
    if wanted is not None:
        if not node.root:
            warnings.append(
                f"localcluster does not run as root, so it cannot switch users: container {name} runs as uid "
                f"{node.uid} gid {node.gid} (localcluster's own), not as {_describe(wanted)}"
            )
        elif (problem := can_reach(wanted)) is not None:
            warnings.append(
                f"container {name} cannot run as {_describe(wanted)}: {problem}; it runs as uid {node.uid} "
                f"(localcluster's own) instead. Let that user through the directory to honour runAsUser"
            )
        else:
            run_as = wanted
    warnings += _filesystem_and_privileges(name, context, runs_as_root=(run_as.uid if run_as else node.uid) == 0)
    return SecurityPlan(run_as, tuple(warnings))


def fs_group_warning(pod: dict[str, Any], node: NodeUser) -> str | None:
    """Why the pod's fsGroup cannot be given to its volumes (localcluster neither root nor in that group)."""
    fs_group = _fs_group(pod)
    if fs_group is None or node.root or fs_group == node.gid or fs_group in node.groups:
        return None
    return f"localcluster does not run as root, so its volumes stay owned by gid {node.gid}, not fsGroup {fs_group}"


def apply_fs_group(pod: dict[str, Any], volumes: dict[str, Path], node: NodeUser) -> None:
    """Give the pod's volumes to its fsGroup as the kubelet's SetVolumeOwnership (when the node may)."""
    fs_group = _fs_group(pod)
    if fs_group is None or fs_group_warning(pod, node) is not None:
        return
    spec = pod.get("spec") or {}
    on_root_mismatch = (spec.get("securityContext") or {}).get("fsGroupChangePolicy") == "OnRootMismatch"
    kinds = {volume["name"]: volume for volume in spec.get("volumes") or []}
    for name, path in volumes.items():
        volume = kinds.get(name, {})
        if "hostPath" in volume:
            continue  # upstream leaves host paths alone
        read_only = "secret" in volume or "configMap" in volume
        if on_root_mismatch and _owned(path, fs_group, read_only=read_only):
            continue  # as upstream: a volume whose top is right is taken to be right throughout
        for target in _walk(path):
            _own(target, fs_group, read_only=read_only)


def blocked_by(paths: Iterable[Path], run_as: RunAs) -> str | None:
    """The first directory on the way to one of `paths` that `run_as` may not pass, said in words (or None)."""
    for path in paths:
        for route in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
            for directory in [*reversed(route.parents), route]:
                try:
                    info = directory.stat()
                except OSError:
                    break  # does not exist (yet): nothing to pass through
                if stat.S_ISDIR(info.st_mode) and not _allows(info, run_as, 0o1):
                    mode = stat.S_IMODE(info.st_mode)
                    return f"uid {run_as.uid} may not enter {directory} (mode {mode:04o}, owner uid {info.st_uid})"
    return None


# -- the pieces ------------------------------------------------------------------------------------


def _verify_run_as_non_root(pod: dict[str, Any], name: str, context: dict[str, Any], node: NodeUser) -> None:
    if not context.get("runAsNonRoot"):
        return
    where = f'(pod: "{_format_pod(pod)}", container: {name})'
    if "runAsUser" in context:
        if context["runAsUser"] == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    if node.uid == 0:  # the workshop image runs as localcluster's user
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")


def _format_pod(pod: dict[str, Any]) -> str:
    metadata = pod["metadata"]
    return f"{metadata['name']}_{metadata.get('namespace', 'default')}({metadata.get('uid', '')})"


def _fs_group(pod: dict[str, Any]) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return int(value) if value is not None else None


def _wanted_identity(context: dict[str, Any], pod_context: dict[str, Any], node: NodeUser) -> RunAs | None:
    """The identity the securityContext asks for, or None when it asks for nothing localcluster's user is not."""
    uid = int(context.get("runAsUser", node.uid))
    if "runAsGroup" in context:
        gid = int(context["runAsGroup"])
    elif "runAsUser" in context:
        gid = _primary_group(uid)
    else:
        gid = node.gid
    extra = [int(group) for group in pod_context.get("supplementalGroups") or []]
    fs_group = _fs_group({"spec": {"securityContext": pod_context}})
    if fs_group is not None:
        extra.append(fs_group)
    groups = tuple(sorted(set(extra) - {gid}))
    if (uid, gid) == (node.uid, node.gid) and set(groups) <= node.groups | {node.gid}:
        return None
    return RunAs(uid, gid, groups)


def _primary_group(uid: int) -> int:
    """A numeric user's group as a container runtime finds it: the passwd entry's, else 0."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return 0


def _describe(run_as: RunAs) -> str:
    groups = f" groups {','.join(map(str, run_as.groups))}" if run_as.groups else ""
    return f"uid {run_as.uid} gid {run_as.gid}{groups}"


def _filesystem_and_privileges(name: str, context: dict[str, Any], *, runs_as_root: bool) -> list[str]:
    said = []
    if context.get("readOnlyRootFilesystem"):
        said.append(
            "readOnlyRootFilesystem is not enforced: a localcluster container has no image filesystem of its own, "
            "and its process may write wherever its user may on this machine"
        )
    capabilities = context.get("capabilities") or {}
    if runs_as_root and capabilities.get("drop"):
        said.append(
            f"capabilities.drop {capabilities['drop']} is not applied: the container runs as root, "
            "with all of root's capabilities"
        )
    if capabilities.get("add"):
        said.append(f"capabilities.add {capabilities['add']} is not granted: localcluster grants no capabilities")
    if context.get("allowPrivilegeEscalation") is False:
        said.append("allowPrivilegeEscalation: false is not enforced (no_new_privs is not set on the process)")
    if not said:
        return []
    return [f"container {name}: " + "; ".join(said)]


def _allows(info: os.stat_result, run_as: RunAs, bit: int) -> bool:
    """Whether `run_as` has permission `bit` (1 execute/search, 2 write, 4 read) by the mode bits."""
    if run_as.uid == 0:
        return True
    if info.st_uid == run_as.uid:
        return bool(info.st_mode & (bit << 6))
    if info.st_gid == run_as.gid or info.st_gid in run_as.groups:
        return bool(info.st_mode & (bit << 3))
    return bool(info.st_mode & bit)


def _walk(root: Path) -> Iterable[Path]:
    yield root
    for directory, subdirectories, files in os.walk(root):
        for entry in (*subdirectories, *files):
            yield Path(directory) / entry


def _mask(info: os.stat_result, *, read_only: bool) -> int:
    """The mode bits SetVolumeOwnership adds: group read (and write), setgid and search on directories."""
    mask = 0o440 if read_only else 0o660
    if stat.S_ISDIR(info.st_mode):
        mask |= stat.S_ISGID | 0o110
    return mask


def _owned(path: Path, group: int, *, read_only: bool) -> bool:
    info = path.stat()
    mask = _mask(info, read_only=read_only)
    return info.st_gid == group and stat.S_IMODE(info.st_mode) & mask == mask


def _own(path: Path, group: int, *, read_only: bool) -> None:
    """chgrp to `group` and add the group's permissions (`_mask`)."""
    info = path.lstat()
    os.lchown(path, -1, group)
    if not stat.S_ISLNK(info.st_mode):
        path.chmod(stat.S_IMODE(info.st_mode) | _mask(info, read_only=read_only))
