"""The format of `make bench`'s report (bench/report.py): the table, bench/results.json
and the closing `bench: key=value ...` line. No timing here: what is measured is the
bench's business, how it is reported is this test's."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.demo_run import parse_output
from bench.report import TARGETS, Figure, Report


def sample() -> Report:
    report = Report(meta={"mode": "quick"})
    report.add("ingest_ratio", 0.114, "", "42.3/s vs insert_one 371/s")
    report.add("submit_p99_ms", 4064.2, "ms")
    report.add("answer_per_s", 312.5, "/s")
    report.add("booth_allocated", 43, "booths")
    report.add("demo_full_speed_s", None, "s", "skipped (--quick)")
    report.add("rss_mb_expo_idle", 95.26, "MiB")
    return report


def test_each_figure_with_a_target_says_whether_it_is_met() -> None:
    report = sample()
    met = {f.key: f.met for f in report.figures}
    assert met == {
        "ingest_ratio": False,
        "submit_p99_ms": False,
        "answer_per_s": True,
        "booth_allocated": True,
        "demo_full_speed_s": None,
        "rss_mb_expo_idle": None,
    }
    assert Figure("booth_allocated", 42).met is False
    assert Figure("submit_p99_ms", 50).met is True
    assert Figure("ingest_ratio", math.nan).met is None


def test_the_issue_targets_are_the_ones_checked() -> None:
    assert TARGETS["demo_full_speed_s"] == ("<=", 120.0)
    assert TARGETS["ingest_ratio"] == (">=", 1.0)
    assert TARGETS["submit_p99_ms"] == ("<=", 50.0)
    assert TARGETS["freshness_p99_ms"] == ("<=", 1000.0)
    assert TARGETS["aggregate_ratio"] == (">=", 0.25)
    assert TARGETS["booth_contention_ratio"] == ("<=", 2.0)
    assert TARGETS["booth_allocated"] == ("==", 43.0)
    assert TARGETS["booth_slowest_allocation_s"] == ("<=", 2.0)
    assert TARGETS["answer_per_s"] == (">=", 300.0)


def test_the_table_has_a_header_and_one_row_per_figure_in_order() -> None:
    lines = sample().table().splitlines()
    assert lines[0].split() == ["figure", "value", "unit", "target", "met", "note"]
    assert set(lines[1]) <= {"-", " "}
    rows = lines[2:]
    assert [row.split()[0] for row in rows] == [f.key for f in sample().figures]
    ingest = rows[0]
    assert "0.114" in ingest and ">= 1" in ingest and "NO" in ingest
    assert "42.3/s vs insert_one 371/s" in ingest
    assert "4064" in rows[1] and "<= 50" in rows[1]
    assert "yes" in rows[2]
    assert "skipped" in rows[4] and "skipped (--quick)" in rows[4]
    # Values line up on the right of their column.
    value_ends = {row.index(row.split()[1]) + len(row.split()[1]) for row in rows[:4]}
    assert len(value_ends) == 1


def test_results_json_holds_every_figure_with_target_and_verdict(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    sample().write_json(path)
    written = json.loads(path.read_text())
    assert written["meta"] == {"mode": "quick"}
    assert list(written["figures"]) == [f.key for f in sample().figures]
    assert written["figures"]["ingest_ratio"] == {
        "value": 0.114,
        "unit": "",
        "target": ">= 1",
        "met": False,
        "note": "42.3/s vs insert_one 371/s",
    }
    assert written["figures"]["demo_full_speed_s"]["value"] is None
    assert written["figures"]["demo_full_speed_s"]["met"] is None
    assert written["figures"]["rss_mb_expo_idle"]["target"] is None


def test_the_last_line_is_key_value_pairs_in_table_order() -> None:
    line = sample().summary_line()
    assert line == (
        "bench: ingest_ratio=0.114 submit_p99_ms=4064 answer_per_s=312 booth_allocated=43 "
        "demo_full_speed_s=skipped rss_mb_expo_idle=95.26"
    )
    assert "\n" not in line


def test_a_figure_measured_again_keeps_its_place_and_takes_the_new_value() -> None:
    report = sample()
    report.add("ingest_ratio", 1.2)
    assert report.figures[0] == Figure("ingest_ratio", 1.2)
    assert report.value("ingest_ratio") == 1.2
    assert len(report.figures) == len(sample().figures)


def test_the_demo_phases_and_final_figures_are_read_from_the_launcher_output() -> None:
    output = [
        "Chuhai is running:\n",
        "exporters registered:  50%|#####     | 63/127\rexporters registered: 100%|###| 127/127\n",
        "exporters registered: 127 in 2.1 s (60.5/s)\n",
        "buyers registered (x500): 68000 in 229.0 s (296.9/s)\n",
        "\n",
        "The bureau's figures:\n",
        "  firms_served          127\n",
        "  buyers             68,000\n",
        "Dashboard (signed in as an officer for 12 h): http://127.0.0.1:8080/login?token=x\n",
    ]
    figures, phases = parse_output(output)
    assert figures == {"firms_served": 127, "buyers": 68_000}
    assert phases == [
        ("exporters registered", 127, 2.1, 60.5),
        ("buyers registered (x500)", 68_000, 229.0, 296.9),
    ]
