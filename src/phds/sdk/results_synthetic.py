"""A DP synthetic dataset (``synthetic.mst``): the rows with their hospital, and the report with them.

The rows were sampled by the hub from the noisy marginals the nodes' gates released; the report's
utility part compares the sample with those marginals, its privacy part is what each node measured on
its real rows and released as noisy counts (distance from each real row to the closest synthetic row).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from phds.protocol.studies import StudyView
from phds.sdk.results import StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class SyntheticResult(StudyResult):
    """Synthetic rows (``to_frame()``, with a ``hospital`` column), the ``report`` dict and its HTML."""

    analysis = "synthetic.mst"

    def __init__(self, study: StudyView) -> None:
        super().__init__(study)
        raw = self.raw
        self.columns: list[str] = list(raw.get("columns") or [])
        self.rows: list[dict[str, Any]] = list(raw.get("rows") or [])
        self.utility: dict[str, Any] = dict(raw.get("utility") or {})
        self.privacy: dict[str, Any] = dict(raw.get("privacy") or {})

    def to_frame(self) -> pd.DataFrame:
        """The synthetic rows, one per line, with the hospital whose generator produced each."""
        return pd.DataFrame(self.rows, columns=self.columns or None)

    @property
    def report(self) -> dict[str, Any]:
        """Utility, privacy and DP budget per hospital, as JSON-ready data (no rows)."""
        fidelity = self.utility.get("fidelity_to_released_marginals") or {}
        dcr = self.privacy.get("distance_to_closest_synthetic") or {}
        hospitals = sorted(set(fidelity) | set(dcr))
        per: dict[str, Any] = {}
        for h in hospitals:
            counts = {k: v for k, v in (dcr.get(h) or {}).items() if k != "ci95"}
            total = sum(max(0, int(v or 0)) for v in counts.values())
            per[h] = {
                "fidelity": fidelity.get(h),
                "distance_to_closest_synthetic": dcr.get(h),
                "exact_match_share": (max(0, int(counts.get("0") or 0)) / total) if total else None,
            }
        return {
            "study": self.study_id,
            "analysis": self.analysis,
            "columns": self.columns,
            "rows": len(self.rows),
            "hospitals": per,
            "dp_budget": {
                h: [b.model_dump(mode="json") for b in lines] for h, lines in self.dp_budget.items()
            },
            "notes": list(self.raw.get("notes") or []),
        }

    def summary(self) -> str:
        """The dataset in a few lines: rows per hospital, fidelity, exact matches, the budget left."""
        lines = [self._header(), f"{len(self.rows)} synthetic rows over {', '.join(self.columns)}"]
        counts = self.to_frame()["hospital"].value_counts().to_dict() if self.rows else {}
        for h, v in self.report["hospitals"].items():
            f = v.get("fidelity") or {}
            share = v.get("exact_match_share")
            lines.append(
                f"  {h}: {counts.get(h, 0)} rows; fidelity one-way {f.get('one_way_mean', 0):.3f}, "
                f"two-way {f.get('two_way_mean', 0):.3f}; tree "
                + ", ".join("–".join(e) for e in f.get("tree") or [])
                + (f"; real rows reproduced exactly (noisy) {share:.2f}" if share is not None else "")
            )
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None) -> Figure:
        """Marginal fidelity (1 − TVD against the released marginals) per marginal and hospital."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fidelity = self.utility.get("fidelity_to_released_marginals") or {}
        fig = Figure(figsize=(8, 0.35 * max(4, sum(len(v["marginals"]) for v in fidelity.values())) + 1))
        ax = fig.subplots()
        labels, values, colours = [], [], []
        palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
        for i, (h, f) in enumerate(sorted(fidelity.items())):
            for m in f["marginals"]:
                labels.append(f"{h}: {' × '.join(m['clique'])}")
                values.append(m["fidelity"])
                colours.append(palette[i % len(palette)])
        ax.barh(range(len(values)), values, color=colours)
        ax.set_yticks(range(len(values)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("fidelity to the released noisy marginal (1 − total variation distance)")
        ax.set_title("Marginal fidelity of the synthetic sample")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def write_report(self, path_html: str | Path) -> Path:
        """Write the HTML report (figures inline) and the same report as JSON beside it (``.json``)."""
        from phds.sdk.synthetic_report_html import render_report

        out = Path(path_html)
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=110)
        figure = base64.b64encode(buffer.getvalue()).decode("ascii")
        report = self.report
        out.write_text(render_report(report, figure, self.to_frame().head(20)), encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
        return out


__all__ = ["SyntheticResult"]
