"""Run every benchmark and write one report, ``bench/RESULTS.md`` (``make bench``).

Each ``bench/bench_*.py`` runs in its own process, one after the other (they would measure each
other otherwise), with its output shown as it comes. The report gives the machine it ran on, a
summary table built from the figures each script printed with ``bench.report.figure()`` (figure,
baseline measured in the same run, ratio, target), and every script's own output. A script that
fails is reported as failed; the others still run, and the exit status says so.

    .venv/bin/python -m bench.run_all [--only NAME ...] [--output bench/RESULTS.md]
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import PREFIX, RESULTS, parse  # noqa: E402

BENCH = ROOT / "bench"


def scripts(only: list[str]) -> list[Path]:
    found = sorted(BENCH.glob("bench_*.py"))
    if only:
        found = [path for path in found if any(name in path.stem for name in only)]
    return found


def run(script: Path, index: int, total: int) -> dict[str, Any]:
    """Run one benchmark, echoing its output, and return what the report needs of it."""
    print(f"== [{index}/{total}] {script.name}", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if not line.startswith(PREFIX):
            print(f"   {line}", end="", flush=True)
    status = process.wait()
    elapsed = time.monotonic() - started
    output = "".join(lines)
    result = "ok" if status == 0 else f"FAILED (exit {status})"
    print(f"   -> {result} in {elapsed:.0f} s", flush=True)
    return {
        "script": script.name,
        "status": status,
        "seconds": elapsed,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "figures": parse(output),
        "output": "".join(line for line in lines if not line.startswith(PREFIX)),
    }


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else ""
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        memory = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else ""
    return [
        ("host", platform.node()),
        ("system", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("CPU", f"{cpu or platform.processor() or '?'}, {os.cpu_count()} logical cores"),
        ("memory", memory or "?"),
        ("Python", platform.python_version()),
        ("PostgreSQL", _version(["psql", "--version"])),
        ("Mosquitto", _version(["mosquitto", "-h"])),
        ("wrk", _version(["wrk", "-v"])),
        ("commit", _git()),
    ]


def _version(command: list[str]) -> str:
    if not shutil.which(command[0]):
        return "not installed"
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "?"


def _git() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def markdown(results: list[dict[str, Any]], when: datetime) -> str:
    out = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python -m bench.run_all`) on {when:%Y-%m-%d %H:%M} UTC. "
        "Each benchmark measures its baseline in the same run on the same machine; the ratio "
        "is ours / baseline (for latencies, baseline / ours). The load average before and "
        "after each run says how busy the machine was. How each benchmark works is in its "
        "docstring; the capacity model built from these figures is in the README "
        "(Deploying, Capacity model).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine()),
        "",
        "## Summary",
        "",
        "| benchmark | figure | value | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if not result["figures"]:
            note = "ok, no figures printed" if result["status"] == 0 else "FAILED"
            out.append(f"| {result['script']} | {note} | | | | | |")
        for item in result["figures"]:
            baseline = ""
            if item.get("baseline") is not None:
                baseline = f"{_fmt(item['baseline'])} {item['unit']}"
                if item.get("baseline_name"):
                    baseline += f" ({item['baseline_name']})"
            ratio = "" if item.get("ratio") is None else f"{item['ratio']:.2f}"
            met = {True: "yes", False: "**no**", None: ""}[item["met"]]
            out.append(
                f"| {result['script']} | {item['name']} | {_fmt(item['value'])} {item['unit']} "
                f"| {baseline} | {ratio} | {item['target']} | {met} |"
            )
    out += ["", "## The long runs, as last recorded", ""]
    out += long_runs()
    out += ["", "## Each benchmark, as printed", ""]
    for result in results:
        state = "ok" if result["status"] == 0 else f"**failed** (exit {result['status']})"
        before = ", ".join(f"{x:.2f}" for x in result["load_before"])
        after = ", ".join(f"{x:.2f}" for x in result["load_after"])
        out += [
            f"### {result['script']}",
            "",
            f"{state}, {result['seconds']:.0f} s; load average before {before}, after {after}.",
            "",
            "```",
            result["output"].rstrip(),
            "```",
            "",
        ]
    return "\n".join(out)


def long_runs(folder: Path = RESULTS) -> list[str]:
    """The latest record of each long run (``make fuzz``, ``crash``, ``rehearse``, ``load``),
    which ``make bench`` does not start: what each printed, headed by when and where it ran."""
    records = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not records:
        return ["None recorded yet (`make fuzz`, `make crash`, `make rehearse`, `make load`)."]
    out = [
        "`make fuzz`, `make crash`, `make rehearse` and `make load` take minutes to hours, so "
        "`make bench` does not start them; each keeps what it printed in `bench/results/`, and "
        "the latest of each is copied here.",
        "",
    ]
    for record in records:
        out += [f"### {record.stem}", "", "```", record.read_text().rstrip(), "```", ""]
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="run the scripts whose name has one")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    chosen = scripts(args.only)
    if not chosen:
        sys.exit(f"no benchmark matches {args.only}")
    when = datetime.now(UTC)
    results = [run(script, n, len(chosen)) for n, script in enumerate(chosen, 1)]
    args.output.write_text(markdown(results, when) + "\n")
    failed = [result["script"] for result in results if result["status"] != 0]
    print(f"wrote {args.output}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
