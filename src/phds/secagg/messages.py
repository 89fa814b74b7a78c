"""Wire models of secure aggregation: the session's configuration and the four signed messages.

Stages follow Bonawitz et al. 2017, Figure 4 (semi-honest variant, without the consistency check of
round 3) in the shape of Flower's SecAgg+ (setup, share keys, collect masked input, unmask):

========  =====================  ===================================================================
stage     message (per sender)   content
========  =====================  ===================================================================
0         :class:`KeysMessage`   two X25519 public keys: c (share encryption) and s (pairwise masks)
1         :class:`EncryptedShare` one per recipient: AES-GCM of the recipient's shares of b_u and s_u^SK
2         :class:`MaskedInput`   y_u = x_u + PRG(b_u) ± Σ PRG(s_u,v) mod 2^64, little-endian uint64
3         :class:`UnmaskMessage` shares of b_v for survivors v and of s_v^SK for dropped v, never both
========  =====================  ===================================================================

Every message names its session and sender and is signed with the sender's Ed25519 node key over
:func:`phds.trust.keys.signed_content` of ``body()`` (every field but the signature) under its own
context, so a signature for one kind can never pass as another. Bytes travel as unpadded base64url.
Signing and checking are :mod:`phds.secagg.protocol`'s work; these models are pure data.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy.typing as npt
from pydantic import Field, model_validator

from phds.errors import InputError
from phds.protocol.canonical import canonical_hash
from phds.protocol.common import WireModel
from phds.secagg.encoding import F64, U64, FixedPoint, as_u64

Name = Annotated[str, Field(min_length=1, max_length=200)]
MAX_PARTICIPANTS = 255  # Shamir share indices are 1..255 (phds.secagg.shamir)
MAX_VECTOR = 2**24


def round_session_id(study_id: object, round_no: int) -> str:
    """The session id of a study's round: hub and nodes derive it alike, so nothing of one round's
    session can be replayed in another's."""
    return f"{study_id}/round-{round_no}"


def default_threshold(n: int) -> int:
    """t = ⌊n/2⌋ + 1 (at least 2): a strict majority, so two disjoint sets of t answers cannot exist."""
    return max(2, n // 2 + 1)


def _threshold_default(data: dict[str, Any]) -> int:
    return default_threshold(len(data.get("participants") or ()))


class SessionConfig(WireModel):
    """One secure sum: who takes part (in a fixed order), the threshold, the vector and its encoding.

    The caller binds ``session_id`` to its study and round; it is in every message, every derived key
    and every associated datum, so nothing from one session can be replayed in another.
    """

    session_id: Name
    participants: list[Name] = Field(min_length=2, max_length=MAX_PARTICIPANTS)
    threshold: int = Field(default_factory=_threshold_default)
    vector_length: int = Field(ge=1, le=MAX_VECTOR)
    scale: int = Field(default=1, ge=1)
    clip: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        n = len(self.participants)
        if len(set(self.participants)) != n:
            raise InputError("participants must be distinct", field="participants")
        if not (n // 2 < self.threshold <= n and self.threshold >= 2):
            raise InputError(
                f"must be a strict majority of the {n} participants (at least 2), not {self.threshold}",
                field="threshold",
            )
        self.fixed_point.check_capacity(n)
        return self

    @property
    def fixed_point(self) -> FixedPoint:
        """The encoding every participant uses (:class:`~phds.secagg.encoding.FixedPoint`)."""
        return FixedPoint(self.scale, self.clip)

    def encode(self, values: npt.ArrayLike) -> U64:
        """*values* as the vector :meth:`~phds.secagg.protocol.Participant.masked_input` takes."""
        encoded = self.fixed_point.encode(values, n_parties=len(self.participants))
        return as_u64(encoded, self.vector_length, what="values")

    def decode(self, total: U64) -> F64:
        """The real sum held by an aggregate's *total*."""
        return self.fixed_point.decode(as_u64(total, self.vector_length, what="total"))

    @property
    def config_hash(self) -> str:
        """SHA-256 of the canonical configuration: participants sign it in stage 0, so all agree."""
        return canonical_hash(self.model_dump(mode="json"))

    def index(self, name: str) -> int:
        """The 1-based Shamir index (and mask order) of participant *name*."""
        try:
            return self.participants.index(name) + 1
        except ValueError:
            raise InputError(
                f"{name!r} does not take part in session {self.session_id}", field="sender"
            ) from None

    def ordered(self, names: set[str] | list[str]) -> list[str]:
        """*names* in the configuration's participant order."""
        wanted = set(names)
        return [p for p in self.participants if p in wanted]


class Signed(WireModel):
    """A message with a session, a sender and an Ed25519 signature over the rest (base64url)."""

    CONTEXT: ClassVar[str] = ""

    session_id: str
    sender: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but the signature, in JSON mode: what the sender's node key signs."""
        return self.model_dump(mode="json", exclude={"signature"})


class KeysMessage(Signed):
    """Stage 0 (Figure 4, round 0, AdvertiseKeys): the sender's two ephemeral X25519 public keys."""

    CONTEXT: ClassVar[str] = "phds.secagg.keys.v1"

    config_hash: str
    c_public: str = Field(description="X25519 public key for encrypting shares to the sender")
    s_public: str = Field(description="X25519 public key for the sender's pairwise mask seeds")


class EncryptedShare(Signed):
    """Stage 1 (Figure 4, round 1, ShareKeys): the recipient's shares of b_sender and s_sender^SK, AES-GCM
    encrypted under agree(c_sender, c_recipient); the hub routes it and sees only ciphertext."""

    CONTEXT: ClassVar[str] = "phds.secagg.share.v1"

    recipient: str
    ciphertext: str


class MaskedInput(Signed):
    """Stage 2 (Figure 4, round 2, MaskedInputCollection): the masked vector y_u.

    ``share_senders`` is the set U2 the sender masked over (who sent it shares); ``b_commitment`` is
    SHA-256 of its self-mask seed b_u (uniform, 256 bits, so it hides b_u) against which the hub checks
    the b_u it reconstructs. ``vector`` is base64url of the little-endian uint64 words.
    """

    CONTEXT: ClassVar[str] = "phds.secagg.masked-input.v1"

    share_senders: list[str]
    b_commitment: str
    vector: str


class UnmaskMessage(Signed):
    """Stage 3 (Figure 4, round 4, Unmasking): the sender's shares of b_v for each survivor v and of s_v^SK
    for each dropped v, keyed by v; the lists it answered are signed with them."""

    CONTEXT: ClassVar[str] = "phds.secagg.unmask.v1"

    survivors: list[str]
    dropped: list[str]
    b_shares: dict[str, str]
    s_shares: dict[str, str]


__all__ = [
    "EncryptedShare",
    "KeysMessage",
    "MaskedInput",
    "SessionConfig",
    "Signed",
    "UnmaskMessage",
    "default_threshold",
    "round_session_id",
]
