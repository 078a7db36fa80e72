"""`python -m labkit.release`: the `lab release` command, runnable without the `lab` entry point.

It lives here, above both, so the library (labkit.release) never imports its command (labkit.cli).
"""

from labkit.cli import release_command

release_command(prog_name="python -m labkit.release")
