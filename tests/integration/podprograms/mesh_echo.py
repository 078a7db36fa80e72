"""A pod's HTTP server on 0.0.0.0:8080 that tells what it received, for mesh routing tests.

Every answer is JSON: the pod's name and $VERSION, the method, path and headers it got, and how many
requests it has served per path. `/status/<code>` answers that status; `/delay/<ms>` waits first;
`/hits` answers the counts only. The `x-echo-version` response header carries $VERSION.
"""

import json
import os
import sys
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

HITS: Counter[str] = Counter()
LOCK = Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the proxy's pooled connections expect

    def answer(self) -> None:
        path = self.path.split("?", 1)[0]
        with LOCK:
            if path != "/hits":
                HITS[path] += 1
            hits = dict(HITS)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status = 200
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        elif path.startswith("/delay/"):
            time.sleep(int(path.rsplit("/", 1)[1]) / 1000)
        document = {
            "pod": os.environ.get("HOSTNAME", ""),
            "version": os.environ.get("VERSION", ""),
            "method": self.command,
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "hits": hits,
        }
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-echo-version", os.environ.get("VERSION", ""))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    print(f"serving on 0.0.0.0:{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
