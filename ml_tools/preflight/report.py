"""The preflight table: one row per check, the fix under each row that is not a pass."""
from __future__ import annotations

import textwrap

from ml_tools.preflight.checks import CANNOT, FAIL, PASS, WARN, Row

_WIDTHS = (13, 56, 50)  # status, check, needs; "has" takes the rest


def render(environment: str, account: str, region: str, rows: list[Row]) -> str:
    out = [f"Preflight of environment {environment!r} in account {account}, region {region} (read-only)", ""]
    out.append(_line("status", "check", "needs", "has"))
    out.append(_line("-" * 6, "-" * 5, "-" * 5, "-" * 3))
    for row in rows:
        out.append(_line(row.status, row.check, row.needs, row.has))
        if row.fix and row.status != PASS:
            out += textwrap.wrap(f"fix: {row.fix}", width=160, initial_indent=" " * _WIDTHS[0],
                                 subsequent_indent=" " * (_WIDTHS[0] + 5), break_on_hyphens=False)
    failed = [r.check for r in rows if r.status == FAIL]
    unknown = [r.check for r in rows if r.status == CANNOT]
    out.append("")
    out.append(f"{sum(r.status == PASS for r in rows)} passed, {len(failed)} failed, "
               f"{sum(r.status == WARN for r in rows)} warned, {len(unknown)} could not be checked (not passes).")
    if failed:
        out.append("Fix before deploying: " + "; ".join(failed))
    return "\n".join(out)


def _line(status: str, check: str, needs: str, has: str) -> str:
    cells = [status, check, needs]
    padded = "".join(cell.ljust(width - 1)[: max(width - 1, len(cell))] + " " for cell, width in zip(cells, _WIDTHS, strict=True))
    return (padded + has).rstrip()
