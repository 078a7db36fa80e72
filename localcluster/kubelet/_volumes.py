"""Volumes as directories, and how a process without a mount namespace finds them at `mountPath`.

Where volumes live: `emptyDir`, `configMap` and `secret` volumes under the pod's directory
(`$LAB_HOME/pods/<uid>/volumes/<name>`, gone with the pod); a `persistentVolumeClaim`'s data under
`$LAB_HOME/volumes/<namespace>/<claim>`, so it outlives its pods; `hostPath` is the host path itself.

How a process finds them: there is no container filesystem, so each pod has a root directory
(`$LAB_HOME/pods/<uid>/root`, the default working directory and HOME) holding a symlink per
volume mount at its `mountPath` (`root/data` -> the volume), and every absolute path under a
`mountPath` in the container's env values, command, args (also after `=` in `--flag=/path`) and
workingDir is rewritten to that symlink. So `env: DATA_DIR=/data` with a volume mounted at `/data`
hands the program a directory that holds the volume. Other absolute paths are host paths. All
containers of a pod share the one root, so they may not mount different volumes at one path.
`readOnly` is not enforced.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.kubelet._env import ContainerConfigError, Lookup, decoded, keys_of


class VolumeError(Exception):
    """A volume cannot be set up (the kubelet's `FailedMount`); the pod waits in ContainerCreating."""


def claim_dir(home: Path, namespace: str, claim: str) -> Path:
    return home / "volumes" / namespace / claim


def prepare_volumes(pod: dict[str, Any], pod_dir: Path, home: Path, lookup: Lookup) -> dict[str, Path]:
    """Create (or refresh) every volume of the pod; returns each volume's directory by name."""
    namespace = pod["metadata"].get("namespace", "default")
    prepared: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        if "emptyDir" in volume:
            path = pod_dir / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # as the kubelet makes them: any user the container runs as may write
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName", "")
            if lookup("persistentvolumeclaims", namespace, claim) is None:
                raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
            path = claim_dir(home, namespace, claim)
            path.parent.parent.mkdir(exist_ok=True, mode=0o711)  # passable, not listable: see the pods' directory
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # as local provisioners (kind's local-path) make them
        elif "configMap" in volume or "secret" in volume:
            path = pod_dir / "volumes" / name
            _project(volume, namespace, path, lookup)
        elif "hostPath" in volume:
            path = _host_path(name, volume["hostPath"])
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(
                f'volume "{name}": localcluster supports emptyDir, configMap, secret, persistentVolumeClaim and '
                f"hostPath volumes, not {', '.join(kinds) or 'this one'}"
            )
        prepared[name] = path
    return prepared


def _project(volume: dict[str, Any], namespace: str, path: Path, lookup: Lookup) -> None:
    """Write a ConfigMap's or Secret's keys as files (all keys, or the listed `items`)."""
    kind, source = ("configmaps", volume["configMap"]) if "configMap" in volume else ("secrets", volume["secret"])
    source_name = source.get("name") if kind == "configmaps" else source.get("secretName")
    obj = lookup(kind, namespace, source_name or "")
    if obj is None and not source.get("optional"):
        raise VolumeError(
            f'MountVolume.SetUp failed for volume "{volume["name"]}" : {kind[:-1]} "{source_name}" not found'
        )
    items = source.get("items") or [{"key": key, "path": key} for key in (keys_of(kind, obj) if obj else [])]
    staging = path.with_name(f".{path.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for item in items:
        try:
            value = decoded(kind, obj, item["key"]) if obj else None
        except ContainerConfigError as exc:
            raise VolumeError(str(exc)) from None
        if value is None:
            if source.get("optional"):
                continue
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : configmap references non-existent '
                f"config key: {item['key']}"
            )
        target = staging / item.get("path", item["key"])
        if not target.resolve().is_relative_to(staging.resolve()):
            raise VolumeError(f'volume "{volume["name"]}": item path {item.get("path")!r} leaves the volume')
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value)
        target.chmod(int(item.get("mode") or source.get("defaultMode") or 0o644) & 0o777 | 0o200)
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)


def _host_path(name: str, source: dict[str, Any]) -> Path:
    path = Path(source.get("path", ""))
    if not path.is_absolute():
        raise VolumeError(f'volume "{name}": hostPath must be absolute')
    if not path.exists():
        if source.get("type") == "DirectoryOrCreate":
            path.mkdir(parents=True)
        elif source.get("type"):
            raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : hostPath {path} does not exist')
    return path


@dataclass
class MountTable:
    """A container's mounts as symlinks in the pod root, and the rewriting of paths under them."""

    root: Path
    links: dict[str, Path] = field(default_factory=dict)  # mountPath -> its symlink under root

    @classmethod
    def link(cls, root: Path, container: dict[str, Any], volumes: dict[str, Path]) -> MountTable:
        """Create the container's mount symlinks under `root` (idempotent); conflicting mounts are an error."""
        root.mkdir(parents=True, exist_ok=True)
        table = cls(root)
        for mount in container.get("volumeMounts") or []:
            mount_path = os.path.normpath(mount.get("mountPath", ""))
            if not mount_path.startswith("/") or mount_path == "/":
                raise ContainerConfigError(f"mountPath {mount.get('mountPath')!r}: must be an absolute path below /")
            if mount.get("name") not in volumes:
                raise ContainerConfigError(f'volumeMount "{mount.get("name")}" names no volume of the pod')
            target = volumes[mount["name"]]
            if mount.get("subPath"):
                target = target / mount["subPath"]
                target.mkdir(parents=True, exist_ok=True)
            link = root / mount_path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                if Path(os.readlink(link)) != target:
                    raise ContainerConfigError(
                        f"localcluster has one filesystem root per pod: two containers mount different "
                        f"volumes at {mount_path}"
                    )
            else:
                link.symlink_to(target, target_is_directory=True)
            table.links[mount_path] = link
        return table

    def rewrite(self, value: str) -> str:
        """An absolute path under a mountPath, as the host sees it; any other value unchanged."""
        if not value.startswith("/"):
            return value
        for mount_path in sorted(self.links, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(self.links[mount_path]) + value[len(mount_path) :]
        return value

    def rewrite_argument(self, argument: str) -> str:
        """Like `rewrite`, also for the value of `--flag=/path`."""
        flag, equals, value = argument.partition("=")
        if equals and not argument.startswith("/"):
            return f"{flag}={self.rewrite(value)}"
        return self.rewrite(argument)

    def working_dir(self, working_dir: str | None) -> Path:
        """Relative (or no) workingDir: inside the pod root; absolute: a host path, or a mount's."""
        if not working_dir:
            return self.root
        if working_dir.startswith("/"):
            return Path(self.rewrite(os.path.normpath(working_dir)))
        return self.root / working_dir
