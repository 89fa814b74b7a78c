"""Cohort definitions: parsing ATLAS (Circe JSON) exports and the YAML short form, and checking them.

``parse_cohort(text)`` accepts

- an ATLAS export of a cohort expression (``{"ConceptSets": …, "PrimaryCriteria": …}``),
- the same wrapped as WebAPI returns it (``{"name": …, "expression": {…}}``; the expression may also be
  a JSON string), or
- the PHDS YAML short form (:mod:`phds.cohorts.yaml_form`), compiled to the same Circe JSON.

Every definition is checked against the supported Circe subset (:mod:`phds.cohorts.subset`) when it
is made, so a hub refuses an unsupported cohort before any node is asked to run it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from phds.cohorts.subset import CheckResult, check_expression
from phds.errors import InputError, PayloadTooLarge
from phds.protocol.canonical import canonical_json

__all__ = ["CohortDefinition", "definition_from_json", "parse_cohort", "validate_concepts"]

#: Large ATLAS exports (thousands of concepts) stay well below this.
MAX_DEFINITION_CHARS = 5_000_000


class CohortDefinition(BaseModel):
    """A checked Circe cohort expression; ``kind`` says whether it was written as Circe JSON or YAML."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["circe", "yaml"]
    expression: dict[str, Any]
    name: str | None = None

    _checked: CheckResult = PrivateAttr()
    _fingerprint: str = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> CohortDefinition:
        self._checked = check_expression(self.expression)
        _check_with_circepy(self._checked.expression)
        self._fingerprint = hashlib.sha256(canonical_json(self._checked.expression).encode()).hexdigest()
        return self

    @property
    def semantic_expression(self) -> dict[str, Any]:
        """The expression without names and concept metadata: what is built and hashed."""
        return self._checked.expression

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :attr:`semantic_expression`."""
        return self._fingerprint

    def concept_ids(self) -> set[int]:
        """Every concept id referred to: concept-set items and attribute filters (e.g. Gender)."""
        return set(self._checked.concept_ids)


def parse_cohort(text: str, *, filename: str | None = None) -> CohortDefinition:
    """Parse Circe JSON (bare or wrapped) or the YAML short form; errors are :class:`InputError`."""
    if len(text) > MAX_DEFINITION_CHARS:
        raise PayloadTooLarge(
            f"a cohort definition may have at most {MAX_DEFINITION_CHARS:,} characters,"
            f" this one has {len(text):,}",
            file=filename,
        )
    stripped = text.lstrip("\ufeff \t\r\n")
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if stripped.startswith("{") or suffix == "json":
        try:
            data = json.loads(stripped)
        except RecursionError:
            raise InputError("JSON nested too deeply", file=filename) from None
        except json.JSONDecodeError as exc:
            offset = len(text) - len(stripped)
            line = exc.lineno + text[:offset].count("\n")
            raise InputError(
                f"not valid JSON: {exc.msg}", file=filename, line=line, column=str(exc.colno)
            ) from None
        return definition_from_json(data, filename=filename)
    from phds.cohorts.yaml_form import parse_yaml_form

    return parse_yaml_form(text, filename=filename)


def definition_from_json(data: Any, *, filename: str | None = None) -> CohortDefinition:
    """A definition from parsed Circe JSON: the bare expression or a ``{"expression": …}`` wrapper."""
    if not isinstance(data, dict):
        raise InputError("a cohort definition must be a JSON object", file=filename, field="(root)")
    name: str | None = None
    path = ""
    if "expression" in data and "PrimaryCriteria" not in data:  # WebAPI / ATLAS definition wrapper
        name = data.get("name") if isinstance(data.get("name"), str) else None
        expression = data["expression"]
        if isinstance(expression, str):
            try:
                expression = json.loads(expression)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON: {exc.msg}", file=filename, field="expression") from None
        data, path = expression, "expression"
    try:
        check_expression(data, path=path)  # first, so that paths inside a wrapper start "expression."
        if name is None and isinstance(data.get("Title"), str):
            name = data["Title"]
        return CohortDefinition(kind="circe", expression=data, name=name)
    except InputError as exc:
        raise InputError(_bare(exc), file=filename, field=exc.field) from None


def _bare(exc: InputError) -> str:
    """The message of an InputError without its location prefix."""
    prefix = f"field {exc.field}: " if exc.field else ""
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message


def _check_with_circepy(semantic: dict[str, Any]) -> None:
    """Let circepy's own model and normaliser read the expression, so a node never meets a surprise."""
    from circe.api import cohort_expression_from_json
    from circe.execution.errors import ExecutionError
    from circe.execution.normalize.cohort import normalize_cohort

    try:
        normalize_cohort(cohort_expression_from_json(json.dumps(semantic)))
    except (ValueError, ExecutionError) as exc:
        raise InputError(f"circepy cannot read this cohort: {exc}", field="(root)") from None


def validate_concepts(definition: CohortDefinition, known: Callable[[set[int]], set[int]]) -> None:
    """Refuse a definition that refers to concepts ``known`` does not know (it returns the known subset)."""
    wanted = definition.concept_ids()
    unknown = sorted(wanted - set(known(wanted)))
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (
            f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        )
        raise InputError(f"unknown concept id(s): {shown}", field="ConceptSets")
