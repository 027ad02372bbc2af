"""What the development stand-ins (localstripe, the embedded MQTT broker) share: a service run
as a subprocess on loopback, started, waited for, and stopped; and the helpers around it.

Standard library only, like the stand-ins' modules at import time: their child process
(``python -m devtools.<module>``) imports nothing of the app.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int) -> bool:
    """True when something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def exit_on_sigterm(_signum: int, _frame: object) -> None:
    """A SIGTERM handler that unwinds like Ctrl-C does (``finally`` blocks stop the children)."""
    raise SystemExit(143)


class SigtermPassedOn:
    """From now on, SIGTERM to this runner is sent on to ``child``, and nothing is raised.

    A runner waiting for its server (``child.wait()``) then sees the server end and goes on to
    stop what it started beside it, as after Ctrl-C. Raising from the handler instead
    (:func:`exit_on_sigterm`) breaks into ``Popen.wait`` wherever it happens to be; CI once saw
    a runner so interrupted still waiting 20 s later for a server that had been told to stop.
    ``received`` says whether a SIGTERM came (the runner then exits 143, as terminated).
    """

    def __init__(self, child: subprocess.Popen[Any]) -> None:
        self.child = child
        self.received = False
        signal.signal(signal.SIGTERM, self._pass_on)

    def _pass_on(self, _signum: int, _frame: object) -> None:
        self.received = True
        with contextlib.suppress(ProcessLookupError):  # it has ended already
            os.kill(self.child.pid, signal.SIGTERM)

    def status(self, code: int) -> int:
        """The runner's exit status once the child ended with ``code``."""
        return 143 if self.received else code


class ChildService:
    """A stand-in served by a subprocess (``python -m <module> --host H --port P``).

    Subclasses name the ``module``, the ``name`` people read, any extra arguments, and how to
    tell that it answers. ``with Service() as service: ...`` starts it on a free port (or the one
    given) and stops it at the end of the block.
    """

    name = "service"
    module: str

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def arguments(self) -> list[str]:
        """Arguments after ``--host`` and ``--port``."""
        return []

    def answers(self) -> bool:
        """True once the service serves requests (by default: it accepts connections)."""
        return answers(self.host, self.port)

    def taken_message(self) -> str:
        return f"{self.host}:{self.port} is already taken"

    def start(self, timeout: float = 20.0) -> Self:
        """Start the subprocess and wait until it answers; RuntimeError if it does not."""
        if self._process is not None:
            raise RuntimeError(f"this {self.name} is already started")
        if answers(self.host, self.port):
            raise RuntimeError(self.taken_message())
        # A file, not a pipe: a pipe nobody reads would block the server once it filled up.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        command = [sys.executable, "-m", self.module, "--host", self.host, "--port", str(self.port)]
        self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [*command, *self.arguments()],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self._wait_until_it_answers(timeout)
        return self

    def _wait_until_it_answers(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"{self.name} exited ({code}) at start: {self.stderr_tail()}")
            if self.answers():
                return
            time.sleep(0.05)
        stderr = self.stderr_tail()
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer on {self.host}:{self.port} within {timeout}s: {stderr}"
        )

    def stderr_tail(self) -> str:
        """The end of what the subprocess wrote to stderr (for error messages)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """Terminate the subprocess (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
