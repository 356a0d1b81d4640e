"""Shared fixtures.

``mosquitto``: a private Mosquitto broker for one test, on a free port of
127.0.0.1 (never the machine's own broker on 1883), with persistence in the
test's tmp dir so ``stop()`` + ``start()`` keeps sessions and queued
messages.  ``mosquitto_factory(extra_conf)`` makes more brokers, or ones with
extra config lines (password_file, certfile/keyfile...: they are appended
after the ``listener`` line, so listener options apply).  Tests using them
are skipped when mosquitto is not installed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Mosquitto:
    """One broker process; ``start``/``stop`` may be called repeatedly and
    always reuse the same port, config and persistence directory."""

    host = "127.0.0.1"

    def __init__(self, binary: str, workdir: Path, extra_conf: str = "", *, anonymous: bool = True) -> None:
        self.binary = binary
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        self.conf_path.write_text(
            f"user {getpass.getuser()}\n"  # as root, do not switch to 'mosquitto' (tmp dir perms)
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence true\n"
            "set_tcp_nodelay true\n"  # as a deployment should: no 40 ms Nagle stalls on small messages
            f"persistence_location {self.dir}/\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"listener {self.port} {self.host}\n"
            f"{extra_conf}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the port accepts connections."""
        if self.running:
            return
        stderr_path = self.dir / "stderr.log"
        with open(stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = stderr_path.read_text(errors="replace")
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s{self.log_tail()}")
                time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM): Mosquitto writes its persistence file."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Hard crash (SIGKILL): nothing saved since the last autosave."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n--- mosquitto.log ---\n" + "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``make(extra_conf="", *, anonymous=True, start=True) -> Mosquitto``;
    all are killed at teardown."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    made: list[Mosquitto] = []

    def make(extra_conf: str = "", *, anonymous: bool = True, start: bool = True) -> Mosquitto:
        broker = Mosquitto(binary, tmp_path / f"mosquitto{len(made)}", extra_conf, anonymous=anonymous)
        made.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in made:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A running private broker (``.host .port .url .start() .stop() .kill()``)."""
    return mosquitto_factory()
