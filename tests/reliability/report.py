"""The report: one table at the end of a run, also kept in tests/reliability/results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.reliability.checker import NotifyVerdict, Verdict
from tests.reliability.faults import FaultResult
from tests.reliability.history import ACKNOWLEDGED, FAILED, INDETERMINATE, History

RESULTS = Path(__file__).with_name("results.json")


def results(
    history: History,
    verdict: Verdict,
    notified: NotifyVerdict,
    faults: list[FaultResult],
    *,
    poison_records: int,
    reconciled: tuple[list[str], int],
    seconds: float,
) -> dict[str, Any]:
    """``reconciled``: the reconciliation's differences and how many figures it compared."""
    differences, compared = reconciled
    implied = sum(wanted for wanted, _ in notified.by_kind.values())
    made = sum(got for _, got in notified.by_kind.values())
    return {
        "requests_sent": len(history.requests),
        "acknowledged": len(history.with_outcome(ACKNOWLEDGED)),
        "failed": len(history.with_outcome(FAILED)),
        "failed_by_status": history.failures_by_status(),
        "indeterminate": len(history.with_outcome(INDETERMINATE)),
        "retried_attempts": history.retries(),
        "faults_injected": len(faults),
        "bad_inputs_tried": sum(r.bad_input for r in history.requests) + poison_records,
        "writes_checked": verdict.writes_checked,
        "writes_missing": verdict.missing,
        "double_counts": verdict.double,
        "leaks": verdict.leaks,
        "reconciliation_figures_compared": compared,
        "reconciliation_differences": len(differences),
        "notifications_implied": implied,
        "notifications_made": made,
        "notifications_missing": notified.notifications_missing,
        "notifications_doubled": notified.notifications_doubled,
        "notifications_by_kind": {
            kind: {"implied": wanted, "made": got}
            for kind, (wanted, got) in notified.by_kind.items()
        },
        "email_deliveries": notified.email_deliveries,
        "email_deliveries_missing": notified.email_deliveries_missing,
        "email_deliveries_doubled": notified.email_deliveries_doubled,
        "email_not_delivered": notified.email_not_delivered,
        "emails_caught": notified.emails_caught,
        "emails_missing": notified.emails_missing,
        "emails_unexplained": notified.emails_unexplained,
        "emails_resent": notified.emails_resent,
        "recovery_seconds": {
            f.name: {"answers": f.answered_seconds, "figures_exact": f.figures_seconds}
            for f in faults
        },
        "fault_notes": {f.name: f.notes for f in faults if f.notes},
        "findings": [str(f) for f in verdict.findings][:50]
        + differences[:50]
        + [str(f) for f in notified.findings][:50],
        "run_seconds": round(seconds, 1),
    }


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("requests sent", figures["requests_sent"]),
        ("acknowledged", figures["acknowledged"]),
        (
            "failed",
            f"{figures['failed']} "
            + ", ".join(f"{k} {v}" for k, v in figures["failed_by_status"].items()),
        ),
        ("indeterminate", figures["indeterminate"]),
        ("retried attempts", figures["retried_attempts"]),
        ("faults injected", figures["faults_injected"]),
        ("bad inputs tried", figures["bad_inputs_tried"]),
        ("writes checked", figures["writes_checked"]),
        ("writes missing", figures["writes_missing"]),
        ("double counts", figures["double_counts"]),
        ("leaks (refused but written)", figures["leaks"]),
        ("reconciliation figures compared", figures["reconciliation_figures_compared"]),
        ("reconciliation differences", figures["reconciliation_differences"]),
        (
            "notifications implied / made",
            f"{figures['notifications_implied']} / {figures['notifications_made']} "
            f"({len(figures['notifications_by_kind'])} kinds)",
        ),
        ("notifications missing", figures["notifications_missing"]),
        ("notifications doubled", figures["notifications_doubled"]),
        (
            "e-mail deliveries",
            f"{figures['email_deliveries']} (missing {figures['email_deliveries_missing']}, "
            f"doubled {figures['email_deliveries_doubled']}, "
            f"not delivered {figures['email_not_delivered']})",
        ),
        (
            "e-mails caught",
            f"{figures['emails_caught']} (missing {figures['emails_missing']}, "
            f"unexplained {figures['emails_unexplained']})",
        ),
        ("e-mails resent (same Message-ID)", figures["emails_resent"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("notifications by kind (implied / made):")
    lines += [
        f"  {kind:<{width - 2}}  {counts['implied']} / {counts['made']}"
        for kind, counts in figures["notifications_by_kind"].items()
    ]
    lines.append(
        "recovery seconds (answers again / figures exact again;"
        " notify: from its restart / caught up):"
    )
    fault_width = max((len(n) for n in figures["recovery_seconds"]), default=0)
    lines += [
        f"  {name:<{fault_width}}  {times['answers']:>6.2f}  {times['figures_exact']:>6.2f}"
        for name, times in figures["recovery_seconds"].items()
    ]
    return "\n".join(lines)


def write(figures: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
