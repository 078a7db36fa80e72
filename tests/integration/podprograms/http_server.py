"""A pod's small HTTP server on 0.0.0.0:8080 (as in a container): GET / answers the pod's name.

GET /health answers 200 unless the file named by $UNHEALTHY_MARKER exists (then 500); GET /env/<NAME>
answers that environment variable; GET /file?path=... answers a file's content; GET /peer answers the
address the connection came from and the request line's target (a proxy sends an absolute URL only
if the client spoke to it as one).
"""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        status, body = 200, os.environ.get("HOSTNAME", "")
        if url.path == "/health":
            marker = os.environ.get("UNHEALTHY_MARKER", "")
            status = 500 if marker and os.path.exists(marker) else 200
        elif url.path.startswith("/env/"):
            body = os.environ.get(url.path.removeprefix("/env/"), "")
        elif url.path == "/peer":
            body = f"{self.client_address[0]} {self.path}"
        elif url.path == "/file":
            with open(parse_qs(url.query)["path"][0]) as handle:
                body = handle.read()
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    print(f"serving on 0.0.0.0:{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
