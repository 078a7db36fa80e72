"""Volumes as directories, and how a process without a mount namespace finds them at `mountPath`.

Where volumes live: `emptyDir`, `configMap`, `secret`, `downwardAPI` and `projected` volumes (the
ServiceAccount token volume among them: a token the kubelet requests for the pod, the CA bundle and
the namespace) under the pod's directory
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.kubelet._env import ContainerConfigError, Lookup, decoded, field_value, keys_of

#: Gives a pod a ServiceAccount token: (pod, audience or "", expirationSeconds) -> the token.
TokenSource = Callable[[dict[str, Any], str, int], str]
#: A file a volume holds: its path in the volume, its text, its mode (None: the volume's default).
VolumeFile = tuple[str, str, int | None]


class VolumeError(Exception):
    """A volume cannot be set up (the kubelet's `FailedMount`); the pod waits in ContainerCreating."""


def claim_dir(home: Path, namespace: str, claim: str) -> Path:
    return home / "volumes" / namespace / claim


def prepare_volumes(
    pod: dict[str, Any], pod_dir: Path, home: Path, lookup: Lookup, token: TokenSource | None = None
) -> dict[str, Path]:
    """Create (or refresh) every volume of the pod; returns each volume's directory by name.

    `token` requests the ServiceAccount tokens of `projected` volumes (None: such volumes fail to mount).
    """
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
            kind, source = (
                ("configmaps", volume["configMap"]) if "configMap" in volume else ("secrets", volume["secret"])
            )
            _write_files(path, _keys(kind, source, namespace, name, lookup), source.get("defaultMode"))
        elif "downwardAPI" in volume:
            path = pod_dir / "volumes" / name
            source = volume["downwardAPI"]
            _write_files(path, _downward(source.get("items") or [], pod, name), source.get("defaultMode"))
        elif "projected" in volume:
            path = pod_dir / "volumes" / name
            source = volume["projected"]
            files = [
                file
                for projection in source.get("sources") or []
                for file in _projection(projection, pod, name, lookup, token)
            ]
            _write_files(path, files, source.get("defaultMode"))
        elif "hostPath" in volume:
            path = _host_path(name, volume["hostPath"])
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(
                f'volume "{name}": localcluster supports emptyDir, configMap, secret, downwardAPI, projected, '
                f"persistentVolumeClaim and hostPath volumes, not {', '.join(kinds) or 'this one'}"
            )
        prepared[name] = path
    return prepared


def _keys(kind: str, source: dict[str, Any], namespace: str, volume: str, lookup: Lookup) -> list[VolumeFile]:
    """A ConfigMap's or Secret's keys as files (all keys, or the listed `items`)."""
    source_name = source.get("name") if kind == "configmaps" else source.get("secretName", source.get("name"))
    obj = lookup(kind, namespace, source_name or "")
    if obj is None:
        if source.get("optional"):
            return []
        raise VolumeError(f'MountVolume.SetUp failed for volume "{volume}" : {kind[:-1]} "{source_name}" not found')
    items = source.get("items") or [{"key": key, "path": key} for key in keys_of(kind, obj)]
    files: list[VolumeFile] = []
    for item in items:
        try:
            value = decoded(kind, obj, item["key"])
        except ContainerConfigError as exc:
            raise VolumeError(str(exc)) from None
        if value is None:
            if source.get("optional"):
                continue
            what = "config" if kind == "configmaps" else "secret"
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{volume}" : {kind[:-1]} references non-existent '
                f"{what} key: {item['key']}"
            )
        files.append((item.get("path", item["key"]), value, item.get("mode")))
    return files


def _downward(items: list[dict[str, Any]], pod: dict[str, Any], volume: str) -> list[VolumeFile]:
    files: list[VolumeFile] = []
    for item in items:
        if "fieldRef" not in item:
            raise VolumeError(f'volume "{volume}": localcluster projects downward API fieldRef items only')
        try:
            value = field_value(pod, item["fieldRef"].get("fieldPath", ""), "")
        except ContainerConfigError as exc:
            raise VolumeError(f'volume "{volume}": {exc}') from None
        files.append((item["path"], value, item.get("mode")))
    return files


def _projection(
    projection: dict[str, Any], pod: dict[str, Any], volume: str, lookup: Lookup, token: TokenSource | None
) -> list[VolumeFile]:
    """The files of one source of a projected volume."""
    namespace = pod["metadata"].get("namespace", "default")
    if "serviceAccountToken" in projection:
        request = projection["serviceAccountToken"]
        if token is None:
            raise VolumeError(f'volume "{volume}": this kubelet cannot request ServiceAccount tokens')
        expiration = int(request.get("expirationSeconds") or 3600)
        return [(request.get("path", "token"), token(pod, request.get("audience") or "", expiration), None)]
    if "configMap" in projection:
        return _keys("configmaps", projection["configMap"], namespace, volume, lookup)
    if "secret" in projection:
        return _keys("secrets", projection["secret"], namespace, volume, lookup)
    if "downwardAPI" in projection:
        return _downward(projection["downwardAPI"].get("items") or [], pod, volume)
    kinds = ", ".join(sorted(projection)) or "an empty source"
    raise VolumeError(
        f'volume "{volume}": localcluster projects serviceAccountToken, configMap, secret and downwardAPI, not {kinds}'
    )


def _write_files(path: Path, files: list[VolumeFile], default_mode: int | None) -> None:
    """Replace the volume's directory with `files`, all at once (a reader never sees half a volume)."""
    staging = path.with_name(f".{path.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for relative, text, mode in files:
        target = staging / relative
        if not target.resolve().is_relative_to(staging.resolve()):
            raise VolumeError(f'volume "{path.name}": item path {relative!r} leaves the volume')
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(int(mode or default_mode or 0o644) & 0o777 | 0o200)
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
