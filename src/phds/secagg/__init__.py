"""Secure aggregation: the hub learns the sum of the nodes' vectors and nothing else about any of them.

Bonawitz et al. 2017, "Practical Secure Aggregation for Privacy-Preserving Machine Learning" (CCS),
semi-honest server with dropout recovery, in the stage shape of Flower's SecAgg+: setup and keys
(stage 0), share keys (1), collect masked input (2), unmask (3). A pure library: no network, no hub or
node code. :mod:`.encoding` maps reals into Z_{2^64}, :mod:`.shamir` shares secrets, :mod:`.prg`
expands masks, :mod:`.keys` agrees keys and encrypts shares, :mod:`.messages` holds the wire models,
:mod:`.protocol` the participant (node) and :mod:`.aggregator` the server (hub).
"""

from __future__ import annotations

from phds.secagg.aggregator import (
    AggregateResult,
    Aggregator,
    aggregate,
    collect_keys,
    collect_masked,
    route_shares,
    unmask_request,
)
from phds.secagg.encoding import FixedPoint
from phds.secagg.messages import (
    EncryptedShare,
    KeysMessage,
    MaskedInput,
    SessionConfig,
    UnmaskMessage,
    default_threshold,
)
from phds.secagg.protocol import Participant

__all__ = [
    "AggregateResult",
    "Aggregator",
    "EncryptedShare",
    "FixedPoint",
    "KeysMessage",
    "MaskedInput",
    "Participant",
    "SessionConfig",
    "UnmaskMessage",
    "aggregate",
    "collect_keys",
    "collect_masked",
    "default_threshold",
    "route_shares",
    "unmask_request",
]
