"""The synthetic dataset's HTML report (Jinja2, autoescaped; the figure inline as a PNG data URI)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from jinja2 import Environment, select_autoescape

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Synthetic dataset {{ r.study }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
.note { color: #555; font-size: 0.9rem; }
</style></head><body>
<h1>Synthetic dataset (MST, differentially private)</h1>
<p>Study <code>{{ r.study }}</code>: {{ r.rows }} synthetic rows over the columns
{{ r.columns | join(", ") }}. Each hospital's rows were sampled by the hub from the noisy marginals its
node released under differential privacy; no real row left any node.</p>

<h2>Privacy budget spent</h2>
<table><tr><th class="l">hospital</th><th class="l">dataset</th><th>ρ spent</th><th>ε remaining</th>
<th>δ</th></tr>
{% for h, lines in r.dp_budget.items() %}{% for b in lines %}
<tr><td class="l">{{ h }}</td><td class="l">{{ b.dataset }}</td><td>{{ "%.4f" % b.spent_rho }}</td>
<td>{{ "%.2f" % b.remaining_epsilon }}</td><td>{{ b.delta }}</td></tr>
{% endfor %}{% endfor %}</table>

<h2>Utility: fidelity to the released marginals</h2>
<p class="note">1 − total variation distance between the sample and each noisy marginal (sdmetrics'
TVComplement, measured against the DP marginals because the real rows stay at the nodes).</p>
<table><tr><th class="l">hospital</th><th>one-way (mean)</th><th>two-way (mean)</th>
<th class="l">tree edges (MST's DP selection)</th><th>noise sd</th><th>ε of the generator</th></tr>
{% for h, v in r.hospitals.items() %}{% set f = v.fidelity %}{% if f %}
<tr><td class="l">{{ h }}</td><td>{{ "%.3f" % f.one_way_mean }}</td><td>{{ "%.3f" % f.two_way_mean }}</td>
<td class="l">{% for e in f.tree %}{{ e | join("–") }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{{ "%.1f" % f.noise_stddev }}</td><td>{{ "%.2f" % f.epsilon }}</td></tr>
{% endif %}{% endfor %}</table>
<img alt="Marginal fidelity per hospital" style="max-width:100%" src="data:image/png;base64,{{ figure }}">

<h2>Utility: sdmetrics' quality score and the pMSE, against the real rows</h2>
<p class="note">Each node released its real two-way table of every pair of columns as noisy counts;
the hub scored the hospital's sample with sdmetrics' QualityReport metrics on them (Column Shapes:
TVComplement; Column Pair Trends: ContingencySimilarity over pairs whose real Cramér's V exceeds
{{ threshold }}). pMSE ratio: the propensity-score MSE over its null expectation (near 1: real and
synthetic rows cannot be told apart). Noise in the real tables lowers the scores.</p>
<table><tr><th class="l">hospital</th><th>quality score</th><th>column shapes</th><th>column pair trends</th>
<th>pMSE (mean)</th><th>pMSE ratio (mean)</th></tr>
{% for h, v in r.hospitals.items() %}{% set q = v.quality %}{% if q %}
<tr><td class="l">{{ h }}</td><td>{{ f3(q.score) }}</td><td>{{ f3(q.column_shapes) }}</td>
<td>{{ f3(q.column_pair_trends) }}</td><td>{{ "%.5f" % q.pmse_mean if q.pmse_mean is not none }}</td>
<td>{{ f3(q.pmse_ratio_mean) }}</td></tr>
{% endif %}{% endfor %}</table>

{% if r.target %}
<h2>Utility: train on synthetic, test on real</h2>
<p class="note">Outcome {{ r.target.column }} = {{ r.target.positive }}. A logistic model trained by
the hub on the network's synthetic rows and one trained at each node on its generator's rows, both
tested on the node's control rows (held out of the generator); AUROC from the noisy counts of cases
and non-cases per bin of predicted risk.</p>
<table><tr><th class="l">hospital</th><th>AUROC synthetic → real</th><th>AUROC real → real</th>
<th>control rows (noisy)</th><th>cases (noisy)</th></tr>
{% for h, v in r.hospitals.items() %}{% set m = v.train_synthetic_test_real %}{% if m %}
<tr><td class="l">{{ h }}</td><td>{{ f3((m.tstr or {}).auroc) }}</td><td>{{ f3((m.trtr or {}).auroc) }}</td>
<td>{{ "%.0f" % m.tstr.n if m.tstr }}</td><td>{{ "%.0f" % m.tstr.cases if m.tstr }}</td></tr>
{% endif %}{% endfor %}
{% if r.network.tstr %}<tr><th class="l">network</th><td>{{ f3(r.network.tstr.auroc) }}</td>
<td>{{ f3((r.network.trtr or {}).auroc) }}</td><td>{{ "%.0f" % r.network.tstr.n }}</td>
<td>{{ "%.0f" % r.network.tstr.cases }}</td></tr>{% endif %}</table>
{% endif %}

<h2>Privacy: distance from each real row to the closest synthetic row</h2>
<p class="note">Computed at each node on its real rows (in bins: the number of columns that differ) and
released by its gate as noisy counts (± the 95% half-width), for the generator's own rows and for the
control rows it never saw. Distance 0 counts real rows that also appear among the synthetic rows; in a
small domain many do by chance, so compare the two shares: a training share well above the control
share is memorisation.</p>
<table><tr><th class="l">hospital</th><th class="l">rows</th>
{% for d in distances %}<th>{{ d }}</th>{% endfor %}<th>± 95%</th><th>exact-match share</th></tr>
{% for h, v in r.hospitals.items() %}
{% for part, label, share in (("dcr", "generator's", v.exact_match_share),
                              ("dcr_control", "control", v.exact_match_share_control)) %}
{% set c = v.distance_to_closest_synthetic.get(part) %}{% if c %}
<tr><td class="l">{{ h }}</td><td class="l">{{ label }}</td>
{% for d in distances %}<td>{{ c.get(d, "") }}</td>{% endfor %}
<td>{{ "%.0f" % c.ci95 }}</td><td>{{ f3(share) }}</td></tr>
{% endif %}{% endfor %}{% endfor %}</table>

<h2>Privacy: anonymeter's risks</h2>
<p class="note">anonymeter's inference attack (guess {{ r.target.column if r.target else "the last column" }}
from the other columns via the closest synthetic row) and linkability attack (link the two halves of
the columns through the same closest synthetic row), run at each node on up to 500 of the generator's
rows and 500 control rows; the risk is the excess success on the generator's rows over the control
rows (Giomi et al. 2023), from noisy counts of hits. Singling-out is not released: one real row can
change every one of its queries' outcomes, so the gate cannot bound it.</p>
<table><tr><th class="l">hospital</th><th class="l">attack</th><th>risk</th><th>95% interval</th>
<th>attack rate</th><th>control rate</th><th>baseline rate</th></tr>
{% for h, v in r.hospitals.items() %}{% for attack, k in (v.anonymeter or {}).items() %}{% if k %}
<tr><td class="l">{{ h }}</td><td class="l">{{ attack }}</td><td>{{ f3(k.risk) }}</td>
<td>{{ f3(k.ci95[0]) }}–{{ f3(k.ci95[1]) }}</td><td>{{ f3(k.attack_rate) }}</td>
<td>{{ f3(k.control_rate) }}</td><td>{{ f3(k.baseline_rate) }}</td></tr>
{% endif %}{% endfor %}{% endfor %}</table>

<h2>First rows</h2>
{{ head | safe }}
{% if r.notes %}<h2>Notes</h2><ul>{% for n in r.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def render_report(report: dict[str, Any], figure_png_b64: str, head: pd.DataFrame) -> str:
    """The report page; *head* is shown as a table (pandas escapes its cells)."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    distances = sorted(
        {
            k
            for v in report["hospitals"].values()
            for part in (v.get("distance_to_closest_synthetic") or {}).values()
            for k in part
            if k != "ci95"
        },
        key=int,
    )
    thresholds = [(v.get("quality") or {}).get("association_threshold") for v in report["hospitals"].values()]
    return env.from_string(TEMPLATE).render(
        r=report,
        figure=figure_png_b64,
        distances=distances,
        threshold=next((t for t in thresholds if t is not None), 0.3),
        f3=_three,
        head=head.to_html(index=False, border=0),
    )


def _three(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


__all__ = ["render_report"]
