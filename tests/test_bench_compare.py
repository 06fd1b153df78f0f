"""`lb-lab bench --web --web-compare`: the goals a comparison is held to, and its report."""

from __future__ import annotations

from lab.bench.web_report import WebReport, format_web, web_goals


def test_a_comparison_keeps_50_frames_and_its_sides_together():
    goals = {goal.key: goal for goal in web_goals({"compare": "round-robin,least-connections"})}
    assert goals["fps"].limit == 50
    assert goals["compare_within_in_flight"].limit is True
    assert goals["compare_final_equal"].limit is True
    assert "compare_final_equal" not in {goal.key for goal in web_goals({"rate": 2000})}


def test_the_report_says_how_far_apart_the_sides_were_and_whether_they_ended_equal():
    report = WebReport(
        settings={"rate": 1000, "seconds": 10, "backends": 3, "browser": "chromium", "cpus": 2,
                  "compare": "round-robin,least-connections"},
        figures={"fps": 49.0, "compare_reads": 20, "compare_worst_gap": 7,
                 "compare_in_flight_then": 12, "compare_within_in_flight": True,
                 "compare_final_equal": False, "compare_final_requests": 19870},
    )  # fmt: skip
    text = format_web(report)
    assert "a comparison (round-robin,least-connections): the rate is each side's" in text
    assert "at most 7 routed in 20 readings under load (12 in flight then)" in text
    verdicts = {v["key"]: v["met"] for v in report.verdicts()}
    assert verdicts["fps"] is False and verdicts["compare_within_in_flight"] is True
    assert verdicts["compare_final_equal"] is False
