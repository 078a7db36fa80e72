"""A pod that ignores SIGTERM (so only the grace deadline's SIGKILL stops it); says `up` once it does."""

import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("up", flush=True)
while True:
    time.sleep(60)
