"""The simulated cloud with a share of its API calls failing, for the soak's workers.

Every call of the driver fails with probability ``ADMINVMS_SOAK_FAULT_RATE`` (0.2), in one of three
ways, equally often: the API answers an error (``DriverError``, before any effect); the call times
out before it reached the cloud; or it times out after the cloud did what was asked (the worst
case: the caller cannot know). A timeout waits ``ADMINVMS_SOAK_TIMEOUT_SECONDS`` (0.5) and raises
``BackendUnavailable``, as the real drivers do on a timeout.

Workers load it through ``tests.soak.celery_app``; the web process and the soak's own checks use the
plain sim.
"""

from __future__ import annotations

import os
import random
import threading
import time

from instances.drivers.base import BackendUnavailable, DriverError
from instances.drivers.sim.driver import SimDriver

FAULTY_CALLS = ("find", "create", "get", "reboot", "stop", "start", "delete", "lock", "assign")


def _rate() -> float:
    return float(os.environ.get("ADMINVMS_SOAK_FAULT_RATE", "0.2"))


def _timeout() -> float:
    return float(os.environ.get("ADMINVMS_SOAK_TIMEOUT_SECONDS", "0.5"))


class FaultySimDriver(SimDriver):
    # One generator per process (pool children fork from one parent): each fails differently.
    _random, _pid = random.Random(), 0
    # The sim's create calls its own find and get: one API call, one draw.
    _inside = threading.local()

    def _faulty(self, name: str, call, *args, **kwargs):
        if getattr(self._inside, "depth", 0):
            return call(*args, **kwargs)
        self._inside.depth = 1
        try:
            return self._draw(name, call, *args, **kwargs)
        finally:
            self._inside.depth = 0

    def _draw(self, name: str, call, *args, **kwargs):
        if self._pid != os.getpid():
            FaultySimDriver._random, FaultySimDriver._pid = random.Random(), os.getpid()
        draw = self._random.random()
        rate = _rate()
        if draw >= rate:
            return call(*args, **kwargs)
        kind = int(draw / rate * 3)
        if kind == 0:
            raise DriverError(f"Simulated API error in {name} (ADMINVMS_SOAK_FAULT_RATE).")
        if kind == 2:
            call(*args, **kwargs)  # done at the cloud, but the answer never comes
        time.sleep(_timeout())
        raise BackendUnavailable(f"Simulated timeout in {name} after {_timeout()} s (ADMINVMS_SOAK_FAULT_RATE).")


def _wrap(name: str):
    plain = getattr(SimDriver, name)

    def method(self, *args, **kwargs):
        return self._faulty(name, lambda *a, **k: plain(self, *a, **k), *args, **kwargs)

    method.__name__ = name
    return method


for _name in FAULTY_CALLS:
    setattr(FaultySimDriver, _name, _wrap(_name))
