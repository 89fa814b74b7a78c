"""The server's side of secure aggregation (Bonawitz et al. 2017, the server's steps in Figure 4).

Pure functions over message lists, so the hub can run them on the messages it stored:

* :func:`collect_keys`: stage 0, the verified :class:`KeysMessage` of each party (U1, at least t),
  broadcast to every party;
* :func:`route_shares`: stage 1, each recipient's encrypted shares from the parties that sent a share to
  every member of U1 (U2, at least t). The server sees ciphertext only;
* :func:`collect_masked` and :func:`unmask_request`: stage 2, the masked inputs (their senders are the
  survivors U3, at least t) and the request sent to each survivor: survivors, and dropped = U2 \\ U3;
* :func:`aggregate`: stage 3, from at least t unmask answers, reconstruct b_v for every survivor and
  subtract PRG(b_v); reconstruct s_v^SK for every dropped v and remove the pairwise masks survivors
  added with v. Then Σ_{u∈U3} y_u minus these masks is Σ_{u∈U3} x_u mod 2^64 (the correctness
  argument of §4).

Every message's session, sender and Ed25519 signature are checked against the pinned node keys. The
server learns the sum over U3 and nothing else about any x_u (§6.1, honest-but-curious security):
each y_u is hidden by PRG(b_u), whose seed is revealed only for parties whose y_u is in the sum, and
the pairwise masks of a dropped party are revealed only when its input is not. :class:`Aggregator` is
the same as a stateful object that checks each message on arrival.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from phds.errors import InputError, SecAggError
from phds.secagg import shamir
from phds.secagg.encoding import U64, add_into, sub_into
from phds.secagg.keys import EphemeralKey
from phds.secagg.messages import (
    EncryptedShare,
    KeysMessage,
    MaskedInput,
    SessionConfig,
    Signed,
    UnmaskMessage,
)
from phds.secagg.prg import mask
from phds.secagg.protocol import add_pairwise, b_commitment, decode_vector, mask_seed, verify
from phds.trust.keys import PublicKey, b64decode

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Signed)
Keys = Mapping[str, KeysMessage] | Iterable[KeysMessage]


@dataclass(frozen=True)
class AggregateResult:
    """The sum of the survivors' inputs mod 2^64 (decode with ``config.fixed_point.decode``), whose
    inputs it holds (``contributors``, U3), who is not in it (``dropped_before_input``), and which
    contributors did not answer the unmask request (``dropped_after_input``; their input is in)."""

    total: U64
    contributors: list[str]
    dropped_before_input: list[str]
    dropped_after_input: list[str]


def _unique(
    config: SessionConfig, messages: Iterable[M], pinned: Mapping[str, PublicKey] | None
) -> dict[str, M]:
    by_sender: dict[str, M] = {}
    for message in messages:
        if pinned is not None:
            verify(message, config, pinned)
        earlier = by_sender.setdefault(message.sender, message)
        if earlier != message:
            kind = type(message).__name__
            raise InputError(f"two different {kind} messages from {message.sender}", field=kind)
    return {name: by_sender[name] for name in config.ordered(list(by_sender))}


def _need(config: SessionConfig, names: Iterable[str], what: str) -> None:
    count = len(set(names))
    if count < config.threshold:
        raise SecAggError(
            f"only {count} participants {what}; session {config.session_id} needs {config.threshold} "
            f"of {len(config.participants)}: too many dropped out"
        )


Pinned = Mapping[str, PublicKey] | None  # None: already checked on arrival (Aggregator)


def _keys(config: SessionConfig, pinned: Pinned, messages: Keys) -> dict[str, KeysMessage]:
    listed = messages.values() if isinstance(messages, Mapping) else messages
    keys = _unique(config, listed, pinned)
    for name, message in keys.items():
        if message.config_hash != config.config_hash:
            raise SecAggError(f"{name} advertised keys for a different configuration of the session")
    _need(config, keys, "advertised keys")
    return keys


def _route(
    config: SessionConfig, pinned: Pinned, u1: dict[str, KeysMessage], shares: Iterable[EncryptedShare]
) -> dict[str, list[EncryptedShare]]:
    by_pair: dict[tuple[str, str], EncryptedShare] = {}
    for share in shares:
        if pinned is not None:
            verify(share, config, pinned)
        if share.sender not in u1 or share.recipient not in u1:
            raise InputError(f"share {share.sender} → {share.recipient} is outside U1", field="shares")
        if by_pair.setdefault((share.sender, share.recipient), share) != share:
            raise InputError(f"two different shares {share.sender} → {share.recipient}", field="shares")
    u2 = [u for u in u1 if all((u, v) in by_pair for v in u1)]
    if incomplete := [u for u in u1 if u not in u2 and any(s == u for s, _ in by_pair)]:
        log.warning(
            "session %s: incomplete shares from %s; treated as dropped", config.session_id, incomplete
        )
    _need(config, u2, "shared keys")
    return {v: [by_pair[(u, v)] for u in u2] for v in u2}


def _masked(
    config: SessionConfig, pinned: Pinned, u1: dict[str, KeysMessage], masked: Iterable[MaskedInput]
) -> dict[str, MaskedInput]:
    inputs = _unique(config, masked, pinned)
    u2s = {tuple(m.share_senders) for m in inputs.values()}
    if len(u2s) > 1:
        raise SecAggError("the masked inputs disagree on who shared keys (U2)")
    u2 = list(u2s.pop()) if u2s else []
    if u2 != config.ordered(u2) or not set(u2) <= set(u1) or not set(inputs) <= set(u2):
        raise SecAggError("the masked inputs name an impossible U2 (unknown, unordered or missing senders)")
    _need(config, inputs, "sent masked inputs")
    return inputs


def collect_keys(
    config: SessionConfig, verify_keys: Mapping[str, PublicKey], messages: Keys
) -> dict[str, KeysMessage]:
    """Stage 0: the verified keys by sender (U1, configuration order), to broadcast; at least t."""
    return _keys(config, verify_keys, messages)


def route_shares(
    config: SessionConfig, verify_keys: Mapping[str, PublicKey], keys: Keys, shares: Iterable[EncryptedShare]
) -> dict[str, list[EncryptedShare]]:
    """Stage 1: recipient → the shares sent to it by U2, the parties whose shares reached all of U1."""
    return _route(config, verify_keys, _keys(config, verify_keys, keys), shares)


def collect_masked(
    config: SessionConfig, verify_keys: Mapping[str, PublicKey], keys: Keys, masked: Iterable[MaskedInput]
) -> dict[str, MaskedInput]:
    """Stage 2: the verified masked inputs by sender (U3); all must name the same U2 ⊆ U1, and U3 ⊆ U2."""
    return _masked(config, verify_keys, _keys(config, verify_keys, keys), masked)


def unmask_request(config: SessionConfig, masked: Mapping[str, MaskedInput]) -> tuple[list[str], list[str]]:
    """Stage 3's request to every survivor: (survivors U3, dropped U2 \\ U3), in configuration order."""
    _need(config, masked, "sent masked inputs")
    u2 = next(iter(masked.values())).share_senders
    return config.ordered(list(masked)), [v for v in u2 if v not in masked]


def _combine(config: SessionConfig, answers: list[UnmaskMessage], v: str, kind: str) -> bytes:
    shares = []
    for answer in answers:
        held = answer.b_shares if kind == "b" else answer.s_shares
        raw = b64decode(held[v], length=shamir.SECRET_BYTES, what=f"share of {kind}_{v}")
        shares.append(shamir.Share(config.index(answer.sender), raw))
    return shamir.combine(shares)


def aggregate(
    config: SessionConfig,
    keys: Keys,
    masked: Iterable[MaskedInput],
    unmasks: Iterable[UnmaskMessage],
    *,
    verify_keys: Mapping[str, PublicKey],
) -> AggregateResult:
    """Stage 3: the survivors' sum from the stored messages of all stages (see the module docstring).

    Pass the messages each stage accepted before it closed; every one is verified again.
    """
    return _aggregate(config, verify_keys, keys, masked, unmasks)


def _aggregate(
    config: SessionConfig,
    pinned: Pinned,
    keys: Keys,
    masked: Iterable[MaskedInput],
    unmasks: Iterable[UnmaskMessage],
) -> AggregateResult:
    u1 = _keys(config, pinned, keys)
    inputs = _masked(config, pinned, u1, masked)
    survivors, dropped = unmask_request(config, inputs)
    answers = _unique(config, unmasks, pinned)
    for name, answer in answers.items():
        if name not in inputs:
            raise InputError(f"{name} answered the unmask request but is not a survivor", field="unmasks")
        if answer.survivors != survivors or answer.dropped != dropped:
            raise SecAggError(f"{name} answered a different unmask request")
        if list(answer.b_shares) != survivors or list(answer.s_shares) != dropped:
            raise SecAggError(f"{name}'s unmask answer lacks shares it was asked for")
    _need(config, answers, "answered the unmask request")
    use = list(answers.values())[: config.threshold]  # t shares suffice (phds.secagg.shamir)
    length = config.vector_length
    total = np.zeros(length, dtype=np.uint64)
    for u in survivors:
        add_into(total, decode_vector(inputs[u].vector, length))
    for u in survivors:
        seed = _combine(config, use, u, "b")
        if b_commitment(config.session_id, u, seed) != inputs[u].b_commitment:
            raise SecAggError(f"the reconstructed self-mask of {u} does not match its commitment")
        sub_into(total, mask(seed, length))
    for v in dropped:
        s_key = EphemeralKey.from_raw(_combine(config, use, v, "s"))
        if s_key.public_b64 != u1[v].s_public:
            raise SecAggError(f"the reconstructed mask key of {v} does not match its advertised key")
        for u in survivors:
            # u added +PRG(s_uv) if v comes after u, −PRG otherwise: removing it is adding v's own term.
            add_pairwise(total, config, v, u, mask_seed(s_key, u1[u].s_public, config.session_id))
    log.info("session %s: summed %d inputs, %d dropped", config.session_id, len(survivors), len(dropped))
    return AggregateResult(
        total=total,
        contributors=survivors,
        dropped_before_input=[p for p in config.participants if p not in inputs],
        dropped_after_input=[u for u in survivors if u not in answers],
    )


class Aggregator:
    """The server's stages as one object. Each ``receive_*`` checks a message on arrival (raising
    :class:`InputError` or :class:`SignatureInvalid` for its sender); each closing call (:meth:`keys`,
    :meth:`route`, :meth:`unmask_request`) ends its stage for good, so a late message is refused with
    :class:`SecAggError` instead of changing a set (U1, U2, U3) the participants already acted on."""

    _STAGES = ("advertise", "share keys", "masked input", "unmask")

    def __init__(self, config: SessionConfig, verify_keys: Mapping[str, PublicKey]) -> None:
        self.config = config
        self._pinned = dict(verify_keys)
        self._stage = 0
        self._keys: list[KeysMessage] = []
        self._shares: list[EncryptedShare] = []
        self._masked: list[MaskedInput] = []
        self._unmasks: list[UnmaskMessage] = []
        self._u1: dict[str, KeysMessage] = {}
        self._routed: dict[str, list[EncryptedShare]] = {}
        self._request: tuple[list[str], list[str]] = ([], [])

    def _accept(self, stage: int, message: Signed) -> None:
        if self._stage != stage:
            state = "closed" if self._stage > stage else "not open yet"
            raise SecAggError(
                f"{type(message).__name__} from {message.sender!r}: the {self._STAGES[stage]} stage of "
                f"session {self.config.session_id} is {state}"
            )
        verify(message, self.config, self._pinned)

    def _close(self, stage: int) -> bool:
        if self._stage < stage:
            raise SecAggError(
                f"the {self._STAGES[self._stage]} stage of session {self.config.session_id} is open"
            )
        return self._stage == stage

    def receive_keys(self, message: KeysMessage) -> None:
        self._accept(0, message)
        self._keys.append(message)

    def keys(self) -> dict[str, KeysMessage]:
        """Close stage 0: U1's keys, to broadcast to each of U1."""
        if self._close(0):
            self._u1, self._stage = _keys(self.config, None, self._keys), 1
        return dict(self._u1)

    def receive_shares(self, shares: Iterable[EncryptedShare]) -> None:
        batch = list(shares)
        for share in batch:
            self._accept(1, share)
            if share.sender not in self._u1 or share.recipient not in self._u1:
                raise InputError(f"share {share.sender} → {share.recipient} is outside U1", field="shares")
        self._shares.extend(batch)

    def route(self) -> dict[str, list[EncryptedShare]]:
        """Close stage 1: recipient → its shares (the senders are U2)."""
        if self._close(1):
            self._routed, self._stage = _route(self.config, None, self._u1, self._shares), 2
        return {v: list(shares) for v, shares in self._routed.items()}

    def receive_masked(self, message: MaskedInput) -> None:
        self._accept(2, message)
        if message.sender not in self._routed:
            raise InputError(f"{message.sender} did not share keys (not in U2)", field="sender")
        decode_vector(message.vector, self.config.vector_length)
        self._masked.append(message)

    def unmask_request(self) -> tuple[list[str], list[str]]:
        """Close stage 2: (survivors, dropped) to send to every survivor."""
        if self._close(2):
            inputs = _masked(self.config, None, self._u1, self._masked)
            self._request, self._stage = unmask_request(self.config, inputs), 3
        return list(self._request[0]), list(self._request[1])

    def receive_unmask(self, message: UnmaskMessage) -> None:
        self._accept(3, message)
        if message.sender not in self._request[0]:
            raise InputError(f"{message.sender} is not a survivor", field="sender")
        self._unmasks.append(message)

    def aggregate(self) -> AggregateResult:
        """The sum over the survivors, from the unmask answers received so far (at least t)."""
        self._close(3)
        return _aggregate(self.config, None, self._keys, self._masked, self._unmasks)


__all__ = [
    "AggregateResult",
    "Aggregator",
    "aggregate",
    "collect_keys",
    "collect_masked",
    "route_shares",
    "unmask_request",
]
