"""``make bench`` gathers every benchmark's figures into one report (bench/RESULTS.md)."""

import pytest

from bench import report, run_all


def test_a_figure_line_round_trips_and_other_lines_are_ignored(capsys):
    report.figure(
        "availability", 2_000.0, "req/s", baseline=8_000.0, baseline_name="hello",
        target=">= 0.5 x hello", met=False,
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.startswith(report.PREFIX)
    (item,) = report.parse("some text\n" + printed + report.PREFIX + "{not json\n")
    assert item["name"] == "availability"
    assert item["ratio"] == 0.25
    assert item["met"] is False


def test_the_runner_collects_a_script_figures_and_writes_the_report(tmp_path, monkeypatch):
    script = tmp_path / "bench_fake.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(run_all.ROOT)!r})\n"
        "from bench import report\n"
        "print('measuring')\n"
        "report.figure('thing', 12.5, 'ms', baseline=50.0, ratio=4.0, target='<= 20 ms', "
        "met=True)\n"
        "report.figure('floor', 800.0, 'req/s', baseline=1000.0)\n"
    )
    broken = tmp_path / "bench_broken.py"
    broken.write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(run_all, "BENCH", tmp_path)
    chosen = run_all.scripts([])
    assert [path.name for path in chosen] == ["bench_broken.py", "bench_fake.py"]
    results = [run_all.run(path, n, 2) for n, path in enumerate(chosen, 1)]
    assert [result["status"] for result in results] == [3, 0]
    assert results[1]["figures"][0]["value"] == 12.5
    assert "measuring" in results[1]["output"]
    assert report.PREFIX not in results[1]["output"]

    from datetime import UTC, datetime

    text = run_all.markdown(results, datetime(2026, 11, 23, tzinfo=UTC))
    assert "| bench_fake.py | thing | 12.50 ms | 50.00 ms | 4.00 | <= 20 ms | yes |" in text
    # a reference figure (no target) is neither met nor missed
    assert results[1]["figures"][1]["met"] is None
    assert "| bench_fake.py | floor | 800 req/s | 1,000 req/s | 0.80 |  |  |" in text
    assert "| bench_broken.py | FAILED |" in text
    assert "**failed** (exit 3)" in text
    assert "| CPU |" in text and "| commit |" in text


def test_a_long_run_keeps_what_it_printed_and_the_report_copies_the_latest(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(report, "RESULTS", tmp_path)

    def crash_run() -> int:
        print("crash: 3 scenario(s), seed 7: all invariants held")
        return 0

    assert report.recorded("crash", "python -m devtools.crash --rounds 1", crash_run) == 0
    assert "all invariants held" in capsys.readouterr().out  # still printed as it ran
    kept = (tmp_path / "crash.txt").read_text()
    assert kept.startswith("$ python -m devtools.crash --rounds 1\nrun ")
    assert "exit status 0" in kept and "load average before" in kept
    assert kept.rstrip().endswith("all invariants held")

    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.recorded("load", "python bench/load/run.py", interrupted)
    assert not (tmp_path / "load.txt").exists()  # a run that did not finish keeps nothing

    section = "\n".join(run_all.long_runs(tmp_path))
    assert "### crash" in section and "all invariants held" in section
    assert "None recorded yet" in "\n".join(run_all.long_runs(tmp_path / "none"))


def test_a_long_run_is_recorded_at_the_commit_it_began_at(tmp_path, monkeypatch):
    # A fuzz pass runs for hours while the checkout moves on: the record names its start.
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "current_commit", lambda: "began0")

    def run_while_the_checkout_moves_on() -> int:
        monkeypatch.setattr(report, "current_commit", lambda: "later1")
        return 0

    report.recorded("fuzz-x", "make fuzz", run_while_the_checkout_moves_on)
    assert "at commit began0;" in (tmp_path / "fuzz-x.txt").read_text()
