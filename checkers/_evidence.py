"""Verdicts kept as evidence: while grading, every check run is appended to a file as one JSON line.

`lab grade` names the file (LAB_EVIDENCE_FILE) for each submission it grades, so the grade of every
cell can be traced to what its check saw in the attendee's namespace at that moment.
"""

from __future__ import annotations

import json
import time

from checkers._result import CheckResult
from labkit.settings import Settings


def record(result: CheckResult) -> None:
    """Append `result` to the evidence file, if one is named; nothing otherwise."""
    path = Settings.from_env().evidence_file
    if path is None:
        return
    line = json.dumps({**result.to_dict(), "recorded_at": time.time()}, ensure_ascii=False)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(line + "\n")
