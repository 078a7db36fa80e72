"""The kubelet's crash-loop back-off: 10 s doubling to 300 s, forgotten after 10 minutes of calm.

It mirrors client-go's `flowcontrol.Backoff` as kuberuntime uses it: the first death restarts at
once and arms 10 s; each later death waits the armed delay and doubles it; a death more than twice
the maximum (600 s) after the last restart starts over.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_SECONDS = 10.0
MAXIMUM_SECONDS = 300.0


@dataclass
class CrashBackOff:
    initial: float = INITIAL_SECONDS
    maximum: float = MAXIMUM_SECONDS
    _armed: float | None = None
    _last_restart: float = 0.0

    def delay_after(self, finished_at: float) -> float:
        """Seconds after `finished_at` (epoch) to wait before restarting a container that died then."""
        if self._armed is None or finished_at - self._last_restart > 2 * self.maximum:
            self._armed = self.initial
            self._last_restart = finished_at
            return 0.0
        delay = self._armed
        self._armed = min(self._armed * 2, self.maximum)
        self._last_restart = finished_at + delay
        return delay
