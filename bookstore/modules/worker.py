"""The process ranking modules run in, apart from the service that hosts them.

``python -m bookstore.modules.worker`` answers one JSON request per line read on stdin with one JSON
line on stdout, in order; the host (:mod:`bookstore.modules.sandbox`) kills it when an answer is
late and starts another. Each answer repeats the request's ``id``::

    {"id": 1, "op": "load", "reference": "x@1", "source": "..."}  ->  {"id": 1, "ok": true, "description": "..."}
    {"id": 2, "op": "rank", "reference": "x@1", "books": [...]}   ->  {"id": 2, "ok": true, "ids": ["00002", ...]}
    {"id": 3, "op": "unload", "reference": "x@1"}                  ->  {"id": 3, "ok": true}
    a refusal                                                      ->  {"id": n, "ok": false, "error": "..."}

What a module prints goes to stderr (the service's log), never into the answers. The process
imports the standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

from bookstore.modules._loader import LoadError, RankError, RankFunction, call_rank, load

#: Address space a module may use before its allocations fail with MemoryError (a refusal, not an OOM kill).
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):  # not on every platform; the host's time limit still holds
        pass


def _protocol_streams() -> tuple[IO[str], IO[str]]:
    """The request and answer channels, with fd 0 and 1 taken away so module code cannot touch them."""
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return requests, answers


def handle(request: dict[str, Any], modules: dict[str, RankFunction]) -> dict[str, Any]:
    """One request's answer (without its id)."""
    op, reference = request.get("op"), str(request.get("reference", ""))
    try:
        if op == "load":
            modules[reference], description = load(reference, str(request["source"]))
            return {"ok": True, "description": description}
        if op == "rank":
            if reference not in modules:
                return {"ok": False, "error": f"{reference} is not loaded"}
            return {"ok": True, "ids": call_rank(reference, modules[reference], request["books"])}
        if op == "unload":
            modules.pop(reference, None)
            return {"ok": True}
    except (LoadError, RankError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown request {op!r}"}


def main() -> None:
    requests, answers = _protocol_streams()
    _limit_memory()
    modules: dict[str, RankFunction] = {}
    for line in requests:
        request = json.loads(line)
        answer = {"id": request.get("id"), **handle(request, modules)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
