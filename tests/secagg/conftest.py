"""A secure-aggregation network in one process: hospitals with node keys, a hub, and the stages run
through JSON (each participant's state and every message), as a node's database and the wire would."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pytest
from pydantic import BaseModel

from phds.secagg import (
    AggregateResult,
    Aggregator,
    EncryptedShare,
    KeysMessage,
    MaskedInput,
    Participant,
    SessionConfig,
    UnmaskMessage,
)
from phds.secagg.encoding import U64
from phds.trust.keys import KeyPair, PublicKey

B = TypeVar("B", bound=BaseModel)


def wire(message: B) -> B:
    """*message* after a trip through JSON."""
    return type(message).model_validate_json(message.model_dump_json())


@dataclass
class Network:
    """N hospitals and a hub; run the stages one by one, or all with :meth:`run`."""

    config: SessionConfig
    signing: dict[str, KeyPair]
    pinned: dict[str, PublicKey]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[KeysMessage] = field(default_factory=list)
    shares: list[EncryptedShare] = field(default_factory=list)
    masked: list[MaskedInput] = field(default_factory=list)
    unmasks: list[UnmaskMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hub = Aggregator(self.config, self.pinned)
        for name in self.config.participants:
            self.save(Participant(self.config, name, self.signing[name], self.pinned))

    @property
    def names(self) -> list[str]:
        return list(self.config.participants)

    def node(self, name: str) -> Participant:
        """The participant as its node reloads it from its database."""
        return Participant.from_state(json.loads(json.dumps(self.states[name])), self.signing[name])

    def save(self, participant: Participant) -> None:
        self.states[participant.me] = json.loads(json.dumps(participant.to_state()))

    def advertise(self, skip: Collection[str] = ()) -> dict[str, KeysMessage]:
        for name in self.names:
            if name not in skip:
                message = wire(self.node(name).advertise())
                self.hub.receive_keys(message)
                self.keys.append(message)
        return {k: wire(v) for k, v in self.hub.keys().items()}

    def share_keys(self, broadcast: dict[str, KeysMessage], skip: Collection[str] = ()) -> None:
        for name in broadcast:
            if name not in skip:
                node = self.node(name)
                sent = [wire(s) for s in node.share_keys(broadcast)]
                self.save(node)
                self.hub.receive_shares(sent)
                self.shares.extend(sent)

    def masked_input(self, vectors: dict[str, U64], skip: Collection[str] = ()) -> None:
        routed = self.hub.route()
        for name, shares in routed.items():
            if name not in skip:
                node = self.node(name)
                message = wire(node.masked_input(vectors[name], [wire(s) for s in shares]))
                self.save(node)
                self.hub.receive_masked(message)
                self.masked.append(message)

    def unmask(self, skip: Collection[str] = ()) -> None:
        survivors, dropped = self.hub.unmask_request()
        for name in survivors:
            if name not in skip:
                node = self.node(name)
                message = wire(node.unmask(survivors, dropped))
                self.save(node)
                self.hub.receive_unmask(message)
                self.unmasks.append(message)

    def run(
        self,
        vectors: dict[str, U64],
        *,
        no_keys: Collection[str] = (),
        no_shares: Collection[str] = (),
        no_input: Collection[str] = (),
        no_unmask: Collection[str] = (),
    ) -> AggregateResult:
        """Every stage, leaving out the named hospitals from the stage they drop at on."""
        broadcast = self.advertise(skip=no_keys)
        self.share_keys(broadcast, skip=no_shares)
        self.masked_input(vectors, skip=no_input)
        self.unmask(skip=no_unmask)
        return self.hub.aggregate()


@pytest.fixture
def network() -> Callable[..., Network]:
    """``network(n, length, **config)``: a fresh network of hospitals h00, h01, ..."""

    def make(n: int, length: int = 8, **config: Any) -> Network:
        names = [f"h{i:02d}" for i in range(n)]
        signing = {name: KeyPair.generate() for name in names}
        pinned = {name: key.public_key for name, key in signing.items()}
        cfg = SessionConfig(
            session_id=f"study-1/round-{n}", participants=names, vector_length=length, **config
        )
        return Network(cfg, signing, pinned)

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2017)
