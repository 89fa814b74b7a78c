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

<h2>Privacy: distance from each real row to the closest synthetic row</h2>
<p class="note">Computed at each node on its real rows (in bins: the number of columns that differ) and
released by its gate as noisy counts (± the 95% half-width). Distance 0 counts real rows that also
appear among the synthetic rows; in a small domain many do by chance, which is why the test suite
compares training rows with held-out rows.</p>
<table><tr><th class="l">hospital</th>{% for d in distances %}<th>{{ d }}</th>{% endfor %}<th>± 95%</th>
<th>exact-match share</th></tr>
{% for h, v in r.hospitals.items() %}{% set c = v.distance_to_closest_synthetic %}{% if c %}
<tr><td class="l">{{ h }}</td>{% for d in distances %}<td>{{ c.get(d, "") }}</td>{% endfor %}
<td>{{ "%.0f" % c.ci95 }}</td>
<td>{{ "%.2f" % v.exact_match_share if v.exact_match_share is not none }}</td></tr>
{% endif %}{% endfor %}</table>

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
            for k in (v.get("distance_to_closest_synthetic") or {})
            if k != "ci95"
        },
        key=int,
    )
    return env.from_string(TEMPLATE).render(
        r=report, figure=figure_png_b64, distances=distances, head=head.to_html(index=False, border=0)
    )


__all__ = ["render_report"]
