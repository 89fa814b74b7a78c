"""Wire model of a secure-aggregation session as the hub shows it (to a participant, or as a transcript)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

PROTOCOL = "Bonawitz et al. 2017 (semi-honest, dropout recovery)"
"""How results name the protocol their secure rounds ran."""


class SessionView(BaseModel):
    """What a participant may see of its session: the stage and what each closed stage decided."""

    session_id: str
    study_id: str
    round: int
    stage: int = Field(description="0 keys, 1 shares, 2 masked, 3 unmask, 4 done, 5 failed")
    error: str | None = None
    config: dict[str, Any]
    node_keys: dict[str, str] = Field(description="Participants' Ed25519 keys as the hub pinned them")
    keys: list[dict[str, Any]] = Field(default_factory=list, description="Stage 0's keys (U1)")
    shares: list[dict[str, Any]] = Field(default_factory=list, description="Stage 1's shares for you (U2)")
    survivors: list[str] = Field(default_factory=list)
    dropped: list[str] = Field(default_factory=list)
    masked: list[dict[str, Any]] = Field(default_factory=list, description="When done: every masked input")
    unmasks: list[dict[str, Any]] = Field(default_factory=list, description="When done: the unmask answers")
    outcome: dict[str, Any] | None = None


__all__ = ["PROTOCOL", "SessionView"]
