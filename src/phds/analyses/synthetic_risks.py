"""Inference and linkability risks of a synthetic dataset: anonymeter's attacks run at the node.

anonymeter (Giomi, Boenisch, Wehmeyer & Tasnádi 2023, "A Unified Framework for Quantifying Privacy
Risk in Synthetic Data", PoPETs 2023(2)) attacks the real rows with the synthetic ones and compares
its success on the generator's own rows (*main*) with its success on rows the generator never saw
(*control*); the risk is the excess, ``(main − control) / (1 − control)`` with Wilson-score rates.

At the node (:func:`attack_aggregates`), on the declared columns as categories (their domain codes):

* **inference** — the attacker knows every column but the *secret* (the utility target, else the last
  column) and guesses it from the nearest synthetic row (anonymeter's ``KNNInferencePredictor``,
  Gower distance); *baseline* guesses a random synthetic row's secret;
* **linkability** — the attacker holds the first half of the columns and the second half in two
  tables and links them when both halves' 10 nearest synthetic rows (``MixedTypeKNeighbors``) share
  one (``LinkabilityIndexes.find_links``); *baseline* picks 10 random rows per half.

Each attacked row's hit or miss is one cell of a breakdown, so a row changes each released count by at
most 1 and the gate's DP applies. The hub turns the noisy counts into anonymeter's risk with its own
``EvaluationResults`` (:func:`risk_of`). anonymeter's *singling-out* risk is not released: its count
is of synthetic predicates that match exactly one real row, and one real row can change the outcome
of all of them, so no per-row bound exists for the gate to noise.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from phds.analyses.synthetic_evaluation import RealRows
from phds.privacy.aggregates import Aggregate, BreakdownAggregate, Persons

N_ATTACKS = 500
"""Rows attacked per attack and set (anonymeter's default ``n_attacks``)."""

LINK_NEIGHBOURS = 10
"""Synthetic neighbours per half in the linkability attack (anonymeter's ``n_neighbors``): a link is
found when the two halves' neighbour sets meet, which ties among identical coarse rows do not hide."""

MIN_CONTROL = 50
"""Fewest control rows for the attacks to run (anonymeter advises 500 to 1,000 for good accuracy)."""

ATTACKS = ("inference", "linkability")
OUTCOMES = ("hit", "miss")


_IMPORT = threading.Lock()
"""Nodes of one process (tests, the demo) evaluate in threads; a first import of anonymeter (and numba)
racing in two threads can see a partly initialised module, so it is imported under this lock."""


def anonymeter_available() -> bool:
    """Whether anonymeter is installed here (it is imported, once, under :data:`_IMPORT`)."""
    with _IMPORT:
        try:
            import anonymeter.evaluators.inference_evaluator
            import anonymeter.neighbors.mixed_types_kneighbors  # noqa: F401
        except ImportError:
            return False
    return True


def _frame(codes: NDArray[np.int64], names: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({n: codes[:, j].astype(str) for j, n in enumerate(names)}).astype(object)


def _breakdown(name: str, persons: Persons, hits: NDArray[np.bool_]) -> BreakdownAggregate:
    labels = np.where(hits, OUTCOMES[0], OUTCOMES[1]).astype(object)
    return BreakdownAggregate(name, persons, labels, list(OUTCOMES))


def attack_aggregates(
    rows: RealRows, synth: NDArray[np.int64], names: Sequence[str], secret: int, seed: int
) -> list[Aggregate]:
    """The six hit/miss breakdowns (module docstring), or none when the control rows are too few."""
    from anonymeter.evaluators.inference_evaluator import evaluate_inference_guesses
    from anonymeter.evaluators.linkability_evaluator import LinkabilityIndexes
    from anonymeter.neighbors.mixed_types_kneighbors import KNNInferencePredictor, MixedTypeKNeighbors

    train, train_persons = rows.train
    held, held_persons = rows.held
    if held.shape[0] < MIN_CONTROL or train.shape[0] < MIN_CONTROL or synth.shape[0] == 0:
        return []
    rng = np.random.default_rng([seed, 2023])
    pick_main = rng.choice(train.shape[0], size=min(N_ATTACKS, train.shape[0]), replace=False)
    pick_control = rng.choice(held.shape[0], size=min(N_ATTACKS, held.shape[0]), replace=False)
    syn = _frame(synth, names)
    targets = {
        "main": (_frame(train[pick_main], names), train_persons.subset(pick_main)),
        "control": (_frame(held[pick_control], names), held_persons.subset(pick_control)),
    }
    secret_name = names[secret]
    aux = [n for n in names if n != secret_name]
    guesser = KNNInferencePredictor(data=syn, columns=aux, target_col=secret_name, n_jobs=1)
    half = max(1, len(names) // 2)
    sides = (list(names[:half]), list(names[half:]))
    k = min(LINK_NEIGHBOURS, syn.shape[0])
    near = [MixedTypeKNeighbors(n_neighbors=k, n_jobs=1).fit(syn[cols]) for cols in sides]
    out: list[Aggregate] = []
    for part, (frame, persons) in targets.items():
        guesses = pd.Series(guesser.predict(frame), index=frame.index)
        hits = evaluate_inference_guesses(guesses=guesses, secrets=frame[secret_name], regression=False)
        out.append(_breakdown(f"inference:{part}", persons, np.asarray(hits, dtype=bool)))
        first, second = (
            nn.kneighbors(frame[cols], return_distance=False) for nn, cols in zip(near, sides, strict=True)
        )
        links = LinkabilityIndexes(first, second).find_links(n_neighbors=k)
        out.append(
            _breakdown(f"linkability:{part}", persons, np.isin(np.arange(frame.shape[0]), list(links)))
        )
        if part == "main":
            random_secret = syn[secret_name].to_numpy()[rng.integers(0, syn.shape[0], size=frame.shape[0])]
            out.append(
                _breakdown("inference:baseline", persons, random_secret == frame[secret_name].to_numpy())
            )
            random_rows = [
                np.stack([rng.choice(syn.shape[0], k, replace=False) for _ in range(frame.shape[0])])
                for _ in sides
            ]
            links = LinkabilityIndexes(*random_rows).find_links(n_neighbors=k)
            out.append(
                _breakdown("linkability:baseline", persons, np.isin(np.arange(frame.shape[0]), list(links)))
            )
    return out


def _hits(cells: Mapping[str, Any]) -> tuple[int, int]:
    hit = max(0, round(float(cells["hit"].get("value") or 0)))
    miss = max(0, round(float(cells["miss"].get("value") or 0)))
    return hit, hit + miss


def risk_of(values: Mapping[str, Any], attack: str, confidence: float = 0.95) -> dict[str, Any] | None:
    """anonymeter's risk of *attack* from a node's released noisy hit counts, or None if absent."""
    names = [f"{attack}:{p}" for p in ("main", "baseline", "control")]
    if any(n not in values for n in names) or not anonymeter_available():
        return None
    from anonymeter.stats.confidence import EvaluationResults

    (hit, n), (base, n_base), (ctl, n_ctl) = (_hits(values[name]["cells"]) for name in names)
    n = max(n, hit, 1)
    with warnings.catch_warnings():  # anonymeter warns when the attack is no better than the baseline
        warnings.simplefilter("ignore")
        results = EvaluationResults(
            n_attacks=(n, max(n_base, base, 1), max(n_ctl, ctl, 1)),
            n_success=hit,
            n_baseline=base,
            n_control=ctl,
            confidence_level=confidence,
        )
    risk = results.risk()
    return {
        "risk": float(risk.value),
        "ci95": [float(risk.ci[0]), float(risk.ci[1])],
        "attack_rate": float(results.attack_rate.value),
        "control_rate": float(results.control_rate.value) if results.control_rate else None,
        "baseline_rate": float(results.baseline_rate.value),
        "attacks": n,
    }


__all__ = ["ATTACKS", "anonymeter_available", "attack_aggregates", "risk_of"]
