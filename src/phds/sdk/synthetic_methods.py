"""``client.synthesize(...)``: one call for a differentially private synthetic dataset (``synthetic.mst``).

::

    result = hub.synthesize(
        dataset="cnsim", epsilon=2.0, rows=1000,
        columns=[{"name": "GENDER", "categories": [0, 1]},
                 {"name": "LAB_HDL", "cuts": [1.0, 1.5, 2.0], "bounds": [0, 4]}],
    )
    result.to_frame()            # the rows, with a hospital column
    result.write_report("synthetic.html")   # and synthetic.json beside it

The study is bought as ``service_type="synthetic_dataset"`` (its own tariff line) and always carries a
``dp:`` block: the nodes refuse a synthetic dataset without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from phds.errors import InputError
from phds.sdk.stats_methods import STUDY_KEYS, table_spec

if TYPE_CHECKING:
    from phds.sdk.results_synthetic import SyntheticResult


class SynthesisMethods:
    """The synthetic-data method of :class:`phds.sdk.Client`."""

    def synthesize(
        self,
        columns: Sequence[Mapping[str, Any]],
        *,
        dataset: str | None = None,
        table: Mapping[str, Any] | None = None,
        epsilon: float | None = None,
        rho: float | None = None,
        rows: int = 1000,
        seed: int = 0,
        evaluate: bool = True,
        target: Mapping[str, Any] | None = None,
        control_fraction: float = 0.2,
        **study: Any,
    ) -> SyntheticResult:
        """A DP synthetic dataset of *columns* (each with ``categories`` or ``cuts``), *rows* per hospital.

        Give the privacy loss per hospital as *epsilon* (δ from the node policy) or *rho* (zCDP).
        *target* (``{"column": ..., "positive": ...}``) adds train-on-synthetic/test-on-real AUROC to the
        report; *control_fraction* of each node's rows are held out of the generator to evaluate on."""
        from phds.sdk.results_synthetic import SyntheticResult

        if (epsilon is None) == (rho is None):
            raise InputError("give the privacy loss as exactly one of epsilon= or rho=", field="dp")
        unknown = set(study) - STUDY_KEYS
        if unknown:
            raise InputError(f"unknown keyword(s): {', '.join(sorted(unknown))}", field="params")
        params = {
            "table": table_spec(dataset, table),
            "columns": [dict(c) for c in columns],
            "rows": rows,
            "seed": seed,
            "evaluate": evaluate,
            "control_fraction": control_fraction,
        }
        if target is not None:
            params["target"] = dict(target)
        study.setdefault("service_type", "synthetic_dataset")
        study.setdefault("title", f"Synthetic dataset of {', '.join(str(c['name']) for c in columns)}")
        dp = {"epsilon": epsilon} if epsilon is not None else {"rho": rho}
        run = getattr(self, "run")  # StatsMethods.run, which Client also inherits  # noqa: B009
        result = run("synthetic.mst", params, dp=dp, **study)
        if not isinstance(result, SyntheticResult):
            raise InputError("the hub's result of synthetic.mst is not a synthetic dataset", field="result")
        return result


__all__ = ["SynthesisMethods"]
