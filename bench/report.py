"""One line per figure, so ``make bench`` can gather every benchmark into ``bench/RESULTS.md``.

A benchmark prints what it likes for people, and for each figure it is judged by, one call of
``figure()``: the figure, the baseline measured in the same run, their ratio and the target. The
line starts with ``BENCH-FIGURE`` and carries JSON; ``bench.run_all`` collects those lines from
each script's output and writes the summary table.

The long runs that ``make bench`` does not start (``make fuzz``, ``make crash``, ``make
rehearse``, ``make load``: minutes to hours each) keep what they printed in
``bench/results/<name>.txt`` through ``recorded()``, headed by when, where, at which commit and
at what load they ran; ``bench.run_all`` copies the latest of each into the report.
"""

import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

PREFIX = "BENCH-FIGURE "
RESULTS = Path(__file__).resolve().parent / "results"


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    target: str = "",
    met: bool | None = None,
    baseline: float | None = None,
    baseline_name: str = "",
    ratio: float | None = None,
) -> None:
    """Print one figure. ``ratio`` defaults to value / baseline when there is a baseline; a figure
    with no ``target`` (a reference, such as a floor) has ``met`` None."""
    if ratio is None and baseline:
        ratio = value / baseline
    line = {
        "name": name,
        "value": _number(value),
        "unit": unit,
        "baseline": _number(baseline),
        "baseline_name": baseline_name,
        "ratio": _number(ratio),
        "target": target,
        "met": None if met is None else bool(met),
    }
    print(PREFIX + json.dumps(line, ensure_ascii=False), flush=True)


def parse(output: str) -> list[dict[str, object]]:
    """The figures a benchmark printed, in order; lines that are not JSON are skipped."""
    figures = []
    for raw in output.splitlines():
        if not raw.startswith(PREFIX):
            continue
        try:
            item = json.loads(raw[len(PREFIX) :])
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and "name" in item:
            figures.append(item)
    return figures


def _number(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), 4)


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def recorded(name: str, command: str, main: Callable[[], int]) -> int:
    """Run ``main``, printing as usual, and keep what it printed in ``bench/results/<name>.txt``
    with a header (the ``command``, when, how long, the host, the commit, the load average
    before and after, the exit status). A run that raises (Ctrl-C) keeps nothing."""
    kept = io.StringIO()
    began, started = datetime.now(UTC), time.monotonic()
    load_before, commit = _load(), current_commit()
    with redirect_stdout(_Tee(sys.stdout, kept)):
        status = main()
    write_record(name, command, kept.getvalue(), began, time.monotonic() - started,
                 load_before, status, commit)  # fmt: skip
    return status


def write_record(
    name: str,
    command: str,
    output: str,
    began: datetime,
    seconds: float,
    load_before: str,
    status: int,
    commit: str | None = None,
) -> Path:
    """Write ``bench/results/<name>.txt``: the header, then ``output``. ``commit`` is the one
    the run began at (:func:`current_commit` then; by default, now's)."""
    header = [
        f"$ {command}",
        f"run {began:%Y-%m-%d %H:%M} UTC for {seconds:.0f} s on {platform.node()} "
        f"({os.cpu_count()} cores) at commit {commit or current_commit()}; "
        f"exit status {status}",
        f"load average before {load_before}, after {_load()}",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.txt"
    path.write_text("\n".join(header) + output.rstrip() + "\n")
    return path


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def current_commit() -> str:
    """The checkout's commit, ``-dirty`` when tracked files hold changes (a run of a long tool
    takes it when it begins: the checkout may move on while it runs)."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "?"
