"""The participant's side of secure aggregation: Bonawitz et al. 2017, semi-honest (the intuition in §4,
the rounds as in the paper's detailed protocol, Figure 4).

A :class:`Participant` (a node) moves through four stages, one call each:

0. :meth:`~Participant.advertise` → :class:`KeysMessage`: fresh X25519 keys c_u (share encryption)
   and s_u (pairwise masks), signed with the node's Ed25519 key (Figure 4, round 0, AdvertiseKeys).
1. :meth:`~Participant.share_keys` → one :class:`EncryptedShare` per party that advertised (U1, itself
   included): after checking every peer's signature, draws the self-mask seed b_u and t-of-n Shamir
   shares of b_u and of s_u^SK, and encrypts each recipient's pair with AES-GCM under
   agree(c_u, c_v) (Figure 4, round 1, ShareKeys).
2. :meth:`~Participant.masked_input` → :class:`MaskedInput`: with U2 the senders of the shares it
   received, y_u = x_u + PRG(b_u) + Σ_{v∈U2, v after u} PRG(s_u,v) − Σ_{v∈U2, v before u} PRG(s_u,v)
   mod 2^64, where s_u,v = HKDF(X25519(s_u, s_v)) and "before/after" is the configuration's order
   (Figure 4, round 2, MaskedInputCollection). Its own secrets are then forgotten.
3. :meth:`~Participant.unmask` → :class:`UnmaskMessage`: for each survivor v its share of b_v, for each
   dropped v its share of s_v^SK, never both for one v: asked for both (in one request or across
   two), it refuses, as §4 requires; it also refuses fewer than t survivors (Figure 4, round 4,
   Unmasking).

Round 3 of the paper (ConsistencyCheck) guards against an active server and is left out, as in
Flower's SecAgg+ for the semi-honest setting. The threshold is a strict majority (see
:func:`~phds.secagg.messages.default_threshold`); each participant answers stage 3 consistently, so
two disjoint groups of t answers, one revealing b_v and one s_v, cannot exist.

Between stages a node persists :meth:`Participant.to_state` (JSON; it holds secrets: store it like a
private key and delete it when the session ends) and resumes with :meth:`Participant.from_state`. It
must persist the state returned after :meth:`~Participant.masked_input` before sending the message, so
that it never masks two different inputs with the same masks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from phds.errors import InputError, SecAggError, SignatureInvalid
from phds.protocol.canonical import canonical_bytes
from phds.secagg import shamir
from phds.secagg.encoding import U64, add_into, as_u64, sub_into
from phds.secagg.keys import NONCE_BYTES, TAG_BYTES, EphemeralKey, agree, open_share, seal_share
from phds.secagg.messages import (
    EncryptedShare,
    KeysMessage,
    MaskedInput,
    SessionConfig,
    Signed,
    UnmaskMessage,
)
from phds.secagg.prg import mask
from phds.trust.keys import KeyPair, PublicKey, b64decode, b64encode, signed_content

M = TypeVar("M", bound=Signed)
Stage = Literal["keys", "shared", "masked", "unmasked"]
SHARE_PLAINTEXT = 2 * shamir.SECRET_BYTES  # share of b_u ‖ share of s_u^SK
SHARE_SEALED = NONCE_BYTES + SHARE_PLAINTEXT + TAG_BYTES


# --- derivations shared by participants and the aggregator -------------------------------------


def sign(message: M, key: KeyPair) -> M:
    """*message* with its signature: the node *key* over ``signed_content(CONTEXT, body())``."""
    return message.model_copy(update={"signature": key.sign(signed_content(message.CONTEXT, message.body()))})


def verify(message: Signed, config: SessionConfig, verify_keys: Mapping[str, PublicKey]) -> None:
    """Check *message* is of this session, from a participant, and signed by that participant's pinned
    key; :class:`InputError` or :class:`SignatureInvalid` otherwise."""
    what = f"{type(message).__name__} from {message.sender!r}"
    if message.session_id != config.session_id:
        raise InputError(f"{what} is for session {message.session_id!r}, not this one", field="session_id")
    config.index(message.sender)
    key = verify_keys.get(message.sender)
    if key is None:
        raise SignatureInvalid(f"{what}: no Ed25519 key is pinned for that participant")
    try:
        key.verify(signed_content(message.CONTEXT, message.body()), message.signature)
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"{what}: {exc.message}") from None


def share_key_info(session_id: str) -> bytes:
    """HKDF info for the pairwise share-encryption key (symmetric in the pair)."""
    return canonical_bytes(["phds.secagg.share-key.v1", session_id])


def share_associated_data(session_id: str, sender: str, recipient: str) -> bytes:
    """AES-GCM associated data of an encrypted share: session, from, to, stage."""
    return canonical_bytes(["phds.secagg.share.v1", session_id, sender, recipient, "share_keys"])


def mask_seed(own_s: EphemeralKey, peer_s_public: str, session_id: str) -> bytes:
    """The pairwise mask seed s_u,v = HKDF(X25519(s_u, s_v), session), equal for u and v."""
    return agree(own_s, peer_s_public, canonical_bytes(["phds.secagg.pair-mask.v1", session_id]))


def b_commitment(session_id: str, sender: str, seed: bytes) -> str:
    """SHA-256 commitment to a self-mask seed b_u (hex), bound to session and sender."""
    prefix = canonical_bytes(["phds.secagg.b-commitment.v1", session_id, sender])
    return hashlib.sha256(prefix + seed).hexdigest()


def encode_vector(vector: U64) -> str:
    """Little-endian uint64 words in unpadded base64url."""
    return b64encode(vector.astype("<u8", copy=False).tobytes())


def decode_vector(text: str, length: int) -> U64:
    """Inverse of :func:`encode_vector`, for exactly *length* words.

    Unlike :func:`phds.trust.keys.b64decode` this does not re-encode to refuse other spellings of the
    last character's unused bits (a megabyte costs milliseconds): the vector is always read from a
    signed message, whose signature covers the text as sent."""
    if not isinstance(text, str) or not text.isascii():
        raise InputError("vector is not URL-safe base64", field="vector")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InputError("vector is not URL-safe base64", field="vector") from None
    if len(raw) != 8 * length:
        raise InputError(f"vector must be {8 * length} bytes in unpadded URL-safe base64", field="vector")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def add_pairwise(total: U64, config: SessionConfig, me: str, peer: str, seed: bytes) -> None:
    """Add me's pairwise mask with *peer* to *total*: +PRG(seed) if peer comes after me, − otherwise."""
    words = mask(seed, config.vector_length)
    if config.index(peer) > config.index(me):
        add_into(total, words)
    else:
        sub_into(total, words)


# --- the participant --------------------------------------------------------------------------


class _State(BaseModel):
    """A participant's whole state between stages (JSON; holds secrets)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    config: SessionConfig
    me: str
    stage: Stage = "keys"
    verify_keys: dict[str, str]
    c_private: str | None
    s_private: str | None
    b_seed: str | None = None
    peers: dict[str, tuple[str, str]] = {}  # U1: v → (c_public, s_public)
    share_senders: list[str] = []  # U2
    shares: dict[str, tuple[str, str]] = {}  # v → (my share of b_v, my share of s_v^SK)
    revealed: dict[str, Literal["b", "s"]] = {}


def _secret(text: str | None, what: str) -> bytes:
    if text is None:
        raise SecAggError(f"the {what} is gone: this participant is past that stage")
    return b64decode(text, length=32, what=what)


class Participant:
    """One party of a secure sum; see the module docstring for its four stages."""

    def __init__(
        self,
        config: SessionConfig,
        me: str,
        signing_key: KeyPair,
        verify_keys: Mapping[str, PublicKey],
    ) -> None:
        config.index(me)
        state = _State(
            config=config,
            me=me,
            verify_keys={name: key.b64 for name, key in verify_keys.items()},
            c_private=b64encode(EphemeralKey.generate().raw),
            s_private=b64encode(EphemeralKey.generate().raw),
        )
        self._load(state, signing_key)

    def _load(self, state: _State, signing_key: KeyPair) -> None:
        pinned = state.verify_keys.get(state.me)
        if pinned != signing_key.public_key_b64:
            raise InputError(f"is not the key pinned for {state.me!r}", field="signing_key")
        self._state = state
        self._key = signing_key
        self._verify_keys = {name: PublicKey.from_b64(b64) for name, b64 in state.verify_keys.items()}

    @property
    def config(self) -> SessionConfig:
        return self._state.config

    @property
    def me(self) -> str:
        return self._state.me

    @property
    def stage(self) -> Stage:
        """The next call's stage: ``keys`` (advertise, share_keys), ``shared``, ``masked``, ``unmasked``."""
        return self._state.stage

    def __repr__(self) -> str:
        return f"Participant({self.me!r}, session={self.config.session_id!r}, stage={self.stage!r})"

    def to_state(self) -> dict[str, Any]:
        """The state as plain JSON, to persist between stages (it holds secrets)."""
        return self._state.model_dump(mode="json")

    @classmethod
    def from_state(cls, state: Mapping[str, Any], signing_key: KeyPair) -> Participant:
        """The participant persisted as *state* by :meth:`to_state`."""
        try:
            parsed = _State.model_validate(dict(state))
        except ValidationError as exc:
            raise InputError(f"not a secure-aggregation participant state ({exc.error_count()} errors)",
                             field="state") from None  # fmt: skip
        participant = cls.__new__(cls)
        participant._load(parsed, signing_key)
        return participant

    def _need(self, *stages: Stage) -> None:
        if self._state.stage not in stages:
            raise SecAggError(f"{self.me} is at stage {self._state.stage!r}, not {' or '.join(stages)}")

    # stage 0
    def advertise(self) -> KeysMessage:
        """Stage 0: the signed public keys c_u and s_u (the same message each time it is asked)."""
        self._need("keys")
        s = self._state
        c_key = EphemeralKey.from_raw(_secret(s.c_private, "c key"))
        s_key = EphemeralKey.from_raw(_secret(s.s_private, "s key"))
        unsigned = KeysMessage(session_id=s.config.session_id, sender=s.me, config_hash=s.config.config_hash,
                               c_public=c_key.public_b64, s_public=s_key.public_b64)  # fmt: skip
        return sign(unsigned, self._key)

    # stage 1
    def share_keys(self, keys: Mapping[str, KeysMessage]) -> list[EncryptedShare]:
        """Stage 1: check every advertised key, then share b_u and s_u^SK among them (U1, self included)."""
        self._need("keys")
        s, config = self._state, self._state.config
        for name, message in keys.items():
            if name != message.sender:
                raise InputError(f"keys of {message.sender!r} are filed under {name!r}", field="keys")
            verify(message, config, self._verify_keys)
            if message.config_hash != config.config_hash:
                raise SecAggError(f"{name} runs a different configuration of session {config.session_id}")
        own, listed = self.advertise(), keys.get(s.me)
        if listed is None or (listed.c_public, listed.s_public) != (own.c_public, own.s_public):
            raise SecAggError(f"the keys listed for {s.me} are missing or not the ones it advertised")
        u1 = config.ordered(list(keys))
        if len(u1) < config.threshold:
            raise SecAggError(f"only {len(u1)} advertised keys; the threshold is {config.threshold}")
        seed = os.urandom(shamir.SECRET_BYTES)
        n = len(config.participants)
        b_shares = shamir.split(seed, config.threshold, n)
        s_shares = shamir.split(_secret(s.s_private, "s key"), config.threshold, n)
        c_key = EphemeralKey.from_raw(_secret(s.c_private, "c key"))
        out = []
        for v in u1:
            i = config.index(v) - 1
            key = agree(c_key, keys[v].c_public, share_key_info(config.session_id))
            sealed = seal_share(key, b_shares[i].data + s_shares[i].data,
                                share_associated_data(config.session_id, s.me, v))  # fmt: skip
            unsigned = EncryptedShare(session_id=config.session_id, sender=s.me, recipient=v,
                                      ciphertext=b64encode(sealed))  # fmt: skip
            out.append(sign(unsigned, self._key))
        s.peers = {v: (keys[v].c_public, keys[v].s_public) for v in u1}
        s.b_seed = b64encode(seed)
        s.stage = "shared"
        return out

    # stage 2
    def masked_input(self, vector: U64, shares_for_me: Sequence[EncryptedShare]) -> MaskedInput:
        """Stage 2: open the shares sent to me (their senders are U2) and mask *vector* over U2."""
        self._need("shared")
        s, config = self._state, self._state.config
        x = as_u64(vector, config.vector_length)
        c_key = EphemeralKey.from_raw(_secret(s.c_private, "c key"))
        received: dict[str, tuple[str, str]] = {}
        for share in shares_for_me:
            verify(share, config, self._verify_keys)
            if share.recipient != s.me:
                raise InputError(f"share from {share.sender} is for {share.recipient}", field="shares")
            if share.sender not in s.peers:
                raise SecAggError(f"{share.sender} sent a share but did not advertise keys")
            if share.sender in received:
                raise InputError(f"two shares from {share.sender}", field="shares")
            key = agree(c_key, s.peers[share.sender][0], share_key_info(config.session_id))
            sealed = b64decode(share.ciphertext, length=SHARE_SEALED, what="ciphertext")
            try:
                plain = open_share(key, sealed, share_associated_data(config.session_id, share.sender, s.me))
            except SignatureInvalid as exc:
                raise SignatureInvalid(f"share from {share.sender}: {exc.message}") from None
            half = shamir.SECRET_BYTES
            received[share.sender] = (b64encode(plain[:half]), b64encode(plain[half:]))
        if s.me not in received:
            raise SecAggError(f"{s.me}'s share of its own secrets did not come back")
        u2 = config.ordered(list(received))
        if len(u2) < config.threshold:
            raise SecAggError(f"only {len(u2)} participants shared keys; the threshold is {config.threshold}")
        seed = _secret(s.b_seed, "self-mask seed")
        s_key = EphemeralKey.from_raw(_secret(s.s_private, "s key"))
        y = x.copy()
        add_into(y, mask(seed, config.vector_length))
        for v in u2:
            if v != s.me:
                add_pairwise(y, config, s.me, v, mask_seed(s_key, s.peers[v][1], config.session_id))
        unsigned = MaskedInput(session_id=config.session_id, sender=s.me, share_senders=u2,
                               b_commitment=b_commitment(config.session_id, s.me, seed),
                               vector=encode_vector(y))  # fmt: skip
        s.shares, s.share_senders = received, u2
        s.c_private = s.s_private = s.b_seed = None  # forget: only t shares can bring them back
        s.stage = "masked"
        return sign(unsigned, self._key)

    # stage 3
    def unmask(self, survivors: Sequence[str], dropped: Sequence[str]) -> UnmaskMessage:
        """Stage 3: reveal shares of b_v for *survivors* and of s_v^SK for *dropped*, never both for one v."""
        self._need("masked", "unmasked")
        s, config = self._state, self._state.config
        alive, gone = set(survivors), set(dropped)
        if len(alive) != len(survivors) or len(gone) != len(dropped):
            raise InputError("a participant is named twice", field="survivors")
        if both := alive & gone:
            raise SecAggError(f"refusing to reveal both b and s of {sorted(both)} (Bonawitz 2017, §4)")
        if unknown := (alive | gone) - set(s.share_senders):
            raise InputError(f"{sorted(unknown)} did not share keys with {s.me}", field="survivors")
        if missing := set(s.share_senders) - alive - gone:
            raise InputError(f"{sorted(missing)} must be named survivor or dropped", field="survivors")
        if s.me not in alive:
            raise SecAggError(f"{s.me} sent its masked input but is listed as dropped")
        if len(alive) < config.threshold:
            raise SecAggError(f"only {len(alive)} survivors; unmasking needs {config.threshold}")
        asked: dict[str, Literal["b", "s"]] = dict.fromkeys(alive, "b")
        asked.update(dict.fromkeys(gone, "s"))
        if conflicts := [v for v, kind in asked.items() if s.revealed.get(v, kind) != kind]:
            raise SecAggError(f"refusing to reveal both b and s of {sorted(conflicts)} (Bonawitz 2017, §4)")
        s.revealed.update(asked)
        s.stage = "unmasked"
        unsigned = UnmaskMessage(
            session_id=config.session_id,
            sender=s.me,
            survivors=config.ordered(list(alive)),
            dropped=config.ordered(list(gone)),
            b_shares={v: s.shares[v][0] for v in config.ordered(list(alive))},
            s_shares={v: s.shares[v][1] for v in config.ordered(list(gone))},
        )
        return sign(unsigned, self._key)


__all__ = [
    "Participant",
    "add_pairwise",
    "b_commitment",
    "decode_vector",
    "encode_vector",
    "mask_seed",
    "share_associated_data",
    "share_key_info",
    "sign",
    "verify",
]
