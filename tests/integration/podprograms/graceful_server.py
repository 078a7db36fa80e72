"""A well-behaved web pod: GET / answers the pod's name; on SIGTERM it keeps serving for DRAIN_SECONDS
(while the endpoints controller takes it out of rotation) and then exits, as production apps drain."""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        payload = os.environ.get("HOSTNAME", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
server.daemon_threads = True


def drain(_signal: int, _frame: object) -> None:
    threading.Timer(float(os.environ.get("DRAIN_SECONDS", "1")), server.shutdown).start()


signal.signal(signal.SIGTERM, drain)
print("serving on 0.0.0.0:8080", flush=True)
server.serve_forever()
