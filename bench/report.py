"""One line per figure, so ``make bench`` can gather every benchmark into ``bench/RESULTS.md``.

A benchmark prints what it likes for people, and for each figure it is judged by, one call of
``figure()``: the figure, the baseline measured in the same run, their ratio and the target. The
line starts with ``BENCH-FIGURE`` and carries JSON; ``bench.run_all`` collects those lines from
each script's output and writes the summary table.
"""

import json
import math

PREFIX = "BENCH-FIGURE "


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
