"""Text for the attendee: code spans that stand out in HTML, and error bodies read as their message."""

from __future__ import annotations

import html
import json
import re

_CODE = re.compile(r"`([^`]+)`")


def rich_text(text: str) -> str:
    """Escaped text with its `code spans` as <code>, so commands stand out and copy cleanly."""
    return _CODE.sub(lambda match: f"<code>{match[1]}</code>", html.escape(text))


def message_text(body: str) -> str:
    """An HTTP body as text: a JSON error's `message` (the bookstore's and the service proxy's errors
    carry one), never escaped JSON; anything else as it came, shortened."""
    try:
        document = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])
    return json.dumps(document, ensure_ascii=False)[:300]
