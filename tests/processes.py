"""Run the services as real processes (``python -m <service>``) from the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# Every service started by the tests, so that none outlives the session whatever fails.
STARTED: list[Service] = []


TEST_SECRET_KEY = "0f3a9c1e7b2d4f6a8c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d"


class Service:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        STARTED.append(self)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        if args[:2] == ["bridge", "run"]:
            # Test brokers outlive tests, and so do the persistent sessions of their bridges: in one
            # shared group, a finished test's session would keep taking its turn of the stream. Each
            # bridge user is its own group unless a test shares one on purpose. No metrics port
            # unless asked (several bridges run at once).
            env = {"BRIDGE_SHARE_GROUP": env.get("MQTT_USERNAME", "bridge"), "BRIDGE_METRICS_PORT": "0", **env}
        if args[:2] in (["webui", "run"], ["webui", "serve"]):
            env = {"SECRET_KEY": TEST_SECRET_KEY, **env}  # `webui run|serve` refuse to serve without one
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=full_env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the crash case (no cleanup, no flush)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2,
             services: list[Service] | None = None) -> object:
    """Poll until ``predicate()`` is truthy; on timeout fail with the services' log tails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {s.name} log (tail) ---\n{s.log()[-3000:]}" for s in services or [])
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{tails}")
        for s in services or []:
            if not s.alive():
                raise AssertionError(f"{s.name} exited with {s.proc.returncode} while waiting for {what}\n"
                                     f"{s.log()[-3000:]}")
        time.sleep(interval)
