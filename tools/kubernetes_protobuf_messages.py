"""Write localcluster/api/protobuf/messages.json: the wire layout of the Kubernetes kinds localcluster decodes.

    python tools/kubernetes_protobuf_messages.py API_REPO APIMACHINERY_REPO [REF]

API_REPO and APIMACHINERY_REPO are git clones (or bare mirrors) of github.com/kubernetes/api and
github.com/kubernetes/apimachinery; REF (default RELEASE) is the tag of the release localcluster serves.
Field numbers and wire types come from their published `generated.proto` files, which are the protocol;
what the JSON form needs and the .proto does not say (the JSON name, whether a field is inlined, a
pointer, or omitted when empty) comes from the Go struct tags of the same packages (`types.go`). Only
messages reachable from ROOTS are written.

`lists` names the messages that wrap a Go slice type (`ExtraValue`): JSON writes them as the array.
Each message is a list of fields `[number, proto name, json name, type, flags]`: `type` is a scalar
proto type, a message's full name, or `map:<key type>:<value type>`; `json name` is "" for a field
inlined into its parent's JSON; flags hold `r` (repeated), `p` (Go pointer: present even when zero)
and `o` (omitted from JSON when zero).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RELEASE = "v0.37.0-beta.0"
OUTPUT = Path(__file__).resolve().parent.parent / "localcluster" / "api" / "protobuf" / "messages.json"

#: The kinds, by proto message, that a client may send as protobuf: those localcluster serves or will serve.
ROOTS = (
    "k8s.io.api.core.v1.Namespace",
    "k8s.io.api.core.v1.Pod",
    "k8s.io.api.core.v1.Service",
    "k8s.io.api.core.v1.Endpoints",
    "k8s.io.api.core.v1.ConfigMap",
    "k8s.io.api.core.v1.Secret",
    "k8s.io.api.core.v1.Event",
    "k8s.io.api.core.v1.ServiceAccount",
    "k8s.io.api.core.v1.PersistentVolumeClaim",
    "k8s.io.api.core.v1.Node",
    "k8s.io.api.core.v1.Binding",
    "k8s.io.api.apps.v1.Deployment",
    "k8s.io.api.apps.v1.ReplicaSet",
    "k8s.io.api.apps.v1.StatefulSet",
    "k8s.io.api.batch.v1.Job",
    "k8s.io.api.batch.v1.CronJob",
    "k8s.io.api.autoscaling.v1.Scale",
    "k8s.io.api.discovery.v1.EndpointSlice",
    "k8s.io.api.rbac.v1.Role",
    "k8s.io.api.rbac.v1.RoleBinding",
    "k8s.io.api.rbac.v1.ClusterRole",
    "k8s.io.api.rbac.v1.ClusterRoleBinding",
    "k8s.io.api.authentication.v1.TokenRequest",
    "k8s.io.api.authentication.v1.SelfSubjectReview",
    "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
    "k8s.io.api.authorization.v1.SelfSubjectRulesReview",
    "k8s.io.api.policy.v1.Eviction",
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Status",
    "k8s.io.apimachinery.pkg.runtime.Unknown",
)

#: proto package directory per repository.
API_PACKAGES = (
    "core/v1",
    "apps/v1",
    "batch/v1",
    "autoscaling/v1",
    "discovery/v1",
    "rbac/v1",
    "authentication/v1",
    "authorization/v1",
    "policy/v1",
)
APIMACHINERY_PACKAGES = (
    "pkg/apis/meta/v1",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
    "pkg/api/resource",
)

_MESSAGE = re.compile(r"^message (\w+) \{$")
_FIELD = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
_MAP_FIELD = re.compile(r"^\s*map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
_STRUCT = re.compile(r"^type (\w+) struct \{")
_SLICE_TYPE = re.compile(r"^type (\w+) \[\]\w+", re.M)
_TAG = re.compile(r'(\w+):"([^"]*)"')


class Repository:
    """Files of one git repository (a clone or a bare mirror) at one tag."""

    def __init__(self, path: Path, ref: str) -> None:
        self.path = path
        self.ref = ref

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True, check=True).stdout

    def commit(self) -> str:
        return self._git("rev-parse", f"{self.ref}^{{commit}}").strip()

    def files(self, directory: str) -> list[str]:
        listed = self._git("ls-tree", "--name-only", f"{self.ref}:{directory}").split()
        return [f"{directory}/{name}" for name in listed if name.endswith(".go")]

    def read(self, path: str) -> str:
        return self._git("show", f"{self.ref}:{path}")


def proto_messages(text: str) -> Iterator[tuple[str, str, list[tuple[int, str, str, bool]]]]:
    """(package, message, [(number, name, type, repeated)]) of each top-level message of a generated.proto."""
    package = re.search(r"^package ([\w.]+);", text, re.M)
    assert package, "a generated.proto without a package"
    current: str | None = None
    fields: list[tuple[int, str, str, bool]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        if current is None:
            started = _MESSAGE.match(stripped)
            if started:
                current, fields = started.group(1), []
            continue
        if stripped == "}":
            yield package.group(1), current, fields
            current = None
            continue
        if (found := _MAP_FIELD.match(line)) is not None:
            key, value, name, number = found.groups()
            fields.append((int(number), name, f"map:{key}:{value}", False))
        elif (found := _FIELD.match(line)) is not None:
            label, field_type, name, number = found.groups()
            fields.append((int(number), name, field_type, label == "repeated"))


def go_fields(text: str) -> Iterator[tuple[str, int, str, bool, bool]]:
    """(struct, field number, json name, pointer, omitempty) of every Go struct field with a protobuf tag."""
    struct: str | None = None
    for line in text.splitlines():
        if struct is None:
            started = _STRUCT.match(line)
            struct = started.group(1) if started else None
            continue
        if line.startswith("}"):
            struct = None
            continue
        if "`" not in line or line.strip().startswith("//"):
            continue
        declaration, tag_text = line.split("`", 1)
        tags = dict(_TAG.findall(tag_text))
        if tags.get("protobuf", "-") == "-":
            continue
        parts = declaration.split()
        go_type = parts[-1]
        tags.setdefault("json", parts[0] if len(parts) == 2 else "")  # untagged: the Go name, as encoding/json
        number = int(tags["protobuf"].split(",")[1])
        json_name, *options = tags.get("json", "").split(",")
        if json_name == "-":
            continue
        embedded = len(parts) == 1
        inline = "inline" in options or (embedded and not json_name)
        yield struct, number, "" if inline else json_name, go_type.startswith("*"), "omitempty" in options


def qualified(package: str, field_type: str) -> str:
    """A field's type with message names made absolute (scalar types unchanged)."""
    if field_type.startswith("map:"):
        _, key, value = field_type.split(":")
        return f"map:{qualified(package, key)}:{qualified(package, value)}"
    if field_type.startswith("."):
        return field_type[1:]
    if field_type[0].isupper():
        return f"{package}.{field_type}"
    return field_type


def main(api_path: str, apimachinery_path: str, ref: str = RELEASE) -> None:
    messages: dict[str, list[tuple[int, str, str, bool]]] = {}
    go: dict[tuple[str, int], tuple[str, bool, bool]] = {}
    slices: set[str] = set()
    sources = {}
    for label, repository, packages in (
        ("kubernetes/api", Repository(Path(api_path), ref), API_PACKAGES),
        ("kubernetes/apimachinery", Repository(Path(apimachinery_path), ref), APIMACHINERY_PACKAGES),
    ):
        sources[label] = repository.commit()
        for directory in packages:
            proto = repository.read(f"{directory}/generated.proto")
            for package, name, fields in proto_messages(proto):
                messages[f"{package}.{name}"] = [
                    (number, field, qualified(package, kind), repeated) for number, field, kind, repeated in fields
                ]
                go_package = package
            for path in repository.files(directory):
                if path.endswith("_test.go") or path.endswith("generated.pb.go"):
                    continue
                text = repository.read(path)
                for struct, number, json_name, pointer, omitempty in go_fields(text):
                    go[(f"{go_package}.{struct}", number)] = (json_name, pointer, omitempty)
                slices.update(f"{go_package}.{name}" for name in _SLICE_TYPE.findall(text))
    table: dict[str, list[list[object]]] = {}
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name in table:
            continue
        if name not in messages:
            raise SystemExit(f"message {name} is not in the packages read; add its package")
        rows = []
        for number, field, kind, repeated in sorted(messages[name]):
            json_name, pointer, omitempty = go.get((name, number), (field, False, True))
            flags = ("r" if repeated else "") + ("p" if pointer else "") + ("o" if omitempty else "")
            rows.append([number, field, json_name, kind, flags])
            for part in kind.removeprefix("map:").split(":"):
                if "." in part:
                    pending.append(part)
        table[name] = rows
    document = {
        "source": "generated.proto and types.go of github.com/kubernetes/api and kubernetes/apimachinery",
        "release": ref,
        "commits": sources,
        # Go slice types the .proto wraps in a message of one repeated field (JSON: the bare array).
        "lists": sorted(slices & set(table)),
        "messages": dict(sorted(table.items())),
    }
    text = json.dumps(document, indent=None, separators=(",", ":"))
    # One message per line: a diff after a Kubernetes upgrade shows which messages changed.
    text = text.replace('],"k8s.io', '],\n"k8s.io').replace('"messages":{', '"messages":{\n')
    OUTPUT.write_text(text + "\n")
    print(f"wrote {len(table)} messages to {OUTPUT}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
