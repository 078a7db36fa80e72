"""The server log: rotated by size with a bounded number of files, stderr following it, and no line per HTTP request."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_the_server_log_rotates_and_stderr_follows_it(tmp_path: Path) -> None:
    # In a process of its own: configuring the server's logging takes over that process's stdout and stderr.
    program = textwrap.dedent(
        f"""
        import logging, os
        from pathlib import Path
        from localcluster.server import configure_logging
        from localcluster.settings import Settings

        settings = Settings(home=Path({str(tmp_path)!r}), log_max_bytes=2000, log_max_files=3)
        settings.log_dir.mkdir()
        configure_logging(settings)
        for number in range(300):
            logging.getLogger("localcluster.kubelet").info("pod default/web: readiness probe succeeds %d", number)
            logging.getLogger("httpx").info('HTTP Request: GET http://127.244.0.1:8080/health "HTTP/1.1 200 OK"')
        os.write(2, b"a traceback written straight to stderr\\n")
        """
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)

    logs = tmp_path / "logs"
    files = sorted(path.name for path in logs.iterdir())
    current = (logs / "localcluster.log").read_text()
    everything = "".join(path.read_text() for path in logs.iterdir())

    assert files == ["localcluster.log", "localcluster.log.1", "localcluster.log.2"]
    assert all(path.stat().st_size <= 2000 + 200 for path in logs.iterdir())
    assert "probe succeeds 299" in everything and "probe succeeds 0\n" not in everything  # the oldest went
    assert "HTTP Request" not in everything
    assert current.endswith("a traceback written straight to stderr\n")
