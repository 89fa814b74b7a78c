"""A DP synthetic dataset (``synthetic.mst``): the rows with their hospital, and the report with them.

The rows were sampled by the hub from the noisy marginals the nodes' gates released. The report's
utility part is the sample's fidelity to those marginals, sdmetrics' quality score and the pMSE against
the real two-way tables, and the AUROC of a model trained on synthetic rows and tested on each node's
real control rows; its privacy part is the distance from each real row to the closest synthetic row
and anonymeter's inference and linkability risks. Every figure that involves real rows was measured at
a node and released by its gate as noisy counts.
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
        quality = self.utility.get("quality") or {}
        models = (self.utility.get("train_synthetic_test_real") or {}).get("hospitals") or {}
        dcr = self.privacy.get("distance_to_closest_synthetic") or {}
        risks = self.privacy.get("anonymeter") or {}
        hospitals = sorted(set(fidelity) | set(dcr) | set(quality))
        per: dict[str, Any] = {}
        for h in hospitals:
            distances = dcr.get(h) or {}
            per[h] = {
                "fidelity": fidelity.get(h),
                "quality": quality.get(h),
                "train_synthetic_test_real": models.get(h),
                "distance_to_closest_synthetic": distances,
                "exact_match_share": _exact_share(distances.get("dcr")),
                "exact_match_share_control": _exact_share(distances.get("dcr_control")),
                "anonymeter": risks.get(h),
            }
        return {
            "study": self.study_id,
            "analysis": self.analysis,
            "columns": self.columns,
            "rows": len(self.rows),
            "hospitals": per,
            "network": (self.utility.get("train_synthetic_test_real") or {}).get("network") or {},
            "target": (self.utility.get("train_synthetic_test_real") or {}).get("target"),
            "dp_budget": {
                h: [b.model_dump(mode="json") for b in lines] for h, lines in self.dp_budget.items()
            },
            "notes": list(self.raw.get("notes") or []),
        }

    def summary(self) -> str:
        """The dataset in a few lines: rows per hospital, quality, TSTR AUROC, exact matches, risks."""
        lines = [self._header(), f"{len(self.rows)} synthetic rows over {', '.join(self.columns)}"]
        counts = self.to_frame()["hospital"].value_counts().to_dict() if self.rows else {}
        for h, v in self.report["hospitals"].items():
            f = v.get("fidelity") or {}
            q = v.get("quality") or {}
            parts = [
                f"{counts.get(h, 0)} rows",
                f"fidelity one-way {f.get('one_way_mean', 0):.3f}, two-way {f.get('two_way_mean', 0):.3f}",
            ]
            if q.get("score") is not None:
                parts.append(
                    f"sdmetrics quality {q['score']:.3f}, pMSE ratio {_fmt(q.get('pmse_ratio_mean'))}"
                )
            models = v.get("train_synthetic_test_real") or {}
            if models:
                parts.append(
                    f"AUROC synthetic→real {_fmt((models.get('tstr') or {}).get('auroc'))}, "
                    f"real→real {_fmt((models.get('trtr') or {}).get('auroc'))}"
                )
            share, control = v.get("exact_match_share"), v.get("exact_match_share_control")
            if share is not None:
                parts.append(
                    f"exact matches (noisy) {share:.2f} of training rows, {_fmt(control)} of control"
                )
            for attack, risk in sorted((v.get("anonymeter") or {}).items()):
                if risk:
                    parts.append(f"{attack} risk {risk['risk']:.3f}")
            lines.append(f"  {h}: " + "; ".join(parts))
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


def _exact_share(counts: dict[str, Any] | None) -> float | None:
    """The noisy share of rows at distance 0 (reproduced exactly) in a released distance histogram."""
    cells = {k: max(0, int(v or 0)) for k, v in (counts or {}).items() if k != "ci95"}
    total = sum(cells.values())
    return cells.get("0", 0) / total if total else None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


__all__ = ["SyntheticResult"]
