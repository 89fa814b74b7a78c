"""``system.noop``: a one-round analysis that reads no data and releases nothing but an empty payload.

It measures the platform itself (task delivery, gate, audit, result path), as the no-op round-trip
benchmark does, and lets an operator check that a node is alive end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from phds.analyses.base import Analysis, Final, LocalStep, NextRound
from phds.analyses.context import LocalContext


class NoOpParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid")


class NoOp(Analysis[NoOpParams]):
    """Do nothing at each node; report which hospitals answered."""

    name: ClassVar[str] = "system.noop"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "No-op round trip"
    data_kind: ClassVar[Literal["omop", "tabular", "none"]] = "none"
    params_model = NoOpParams

    def local(self, ctx: LocalContext, params: NoOpParams) -> LocalStep:
        return LocalStep([])

    def combine(
        self,
        params: NoOpParams,
        round_no: int,
        state: Mapping[str, Any],
        released: Mapping[str, Mapping[str, Any]],
    ) -> Final | NextRound:
        return Final({"answered": sorted(released)})
