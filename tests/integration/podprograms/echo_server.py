"""A tiny Knative-style echo service: listens on $PORT, answers who served the request as JSON.

GET /?sleep=S holds the request S seconds first (concurrency for the autoscaler to see); the answer
names the revision (K_REVISION), service (K_SERVICE), pod (HOSTNAME) and path. No lab uses it.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        sleep = float(parse_qs(url.query).get("sleep", ["0"])[0])
        if sleep:
            time.sleep(sleep)
        body = json.dumps(
            {
                "revision": os.environ.get("K_REVISION", ""),
                "service": os.environ.get("K_SERVICE", ""),
                "configuration": os.environ.get("K_CONFIGURATION", ""),
                "pod": os.environ.get("HOSTNAME", ""),
                "path": url.path,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
