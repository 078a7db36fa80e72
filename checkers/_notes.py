"""Notes a lab keeps in the attendee's namespace: one ConfigMap of check id → text.

Checks run from a notebook, a terminal (`lab check`) or nbgrader, each in a process of its own, so
what one must know of another (a challenge started, what a check saw before its pod went) is kept
in the cluster, beside the lab's objects. A lab's reset forgets its own keys ("01." ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from checkers._context import Context
from labkit._apply import apply


@dataclass(frozen=True)
class NamespaceNotes:
    """The ConfigMap `name` in the connection's namespace, read and written whole."""

    name: str

    def read(self, ctx: Context) -> dict[str, str]:
        try:
            found = ctx.core.read_namespaced_config_map(self.name, ctx.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return dict(found.data or {})

    def put(self, ctx: Context, key: str, value: str) -> None:
        self._write(ctx, {**self.read(ctx), key: value})

    def forget(self, ctx: Context, lab_number: str) -> None:
        """Drop the keys of lab `lab_number`'s checks; the ConfigMap goes with the last key."""
        notes = self.read(ctx)
        kept = {key: value for key, value in notes.items() if not key.startswith(f"{lab_number}.")}
        if kept == notes:
            return
        if kept:
            self._write(ctx, kept)
            return
        try:
            ctx.core.delete_namespaced_config_map(self.name, ctx.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _write(self, ctx: Context, notes: dict[str, str]) -> None:
        """Server-side apply the whole map: keys left out are removed (one field manager owns them all)."""
        apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "bookstore"}},
                "data": notes,
            },
            connection=ctx,
        )
