"""What the node verifies itself before it runs anything: who asks, and that the task is what they asked.

The hub relays; it is not trusted (DESIGN.md invariant 7). For each task the node

1. checks the requester's signed study specification (:mod:`phds.trust.specs`): the organisation and
   its category come from an attestation signed by a network trust key the node pins (``[trust]
   network_keys``), never from the hub's ``requester`` field; an unsigned study is declined where the
   policy requires signatures;
2. checks that the task is the signed study for this hospital: analysis, version, parameters and
   service type equal the signed ones, and the hospital is one of the study's;
3. takes the study's title, purpose and target hospitals from the signed specification, so the steward
   approves what the requester signed.

An attestation is checked for expiry at the first round the node saw (a long study does not fail half
way) and for revocation at every round. Revocation lists the hub relays are accepted only when signed by
a pinned key and newer than the last one; they are kept in ``node.db``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from phds.analyses import get_analysis
from phds.errors import SignatureInvalid
from phds.node.config import NodeConfig
from phds.node.memory import MemoryStore
from phds.protocol.privacy import DpRequest
from phds.protocol.tasks import Task, TaskRequester
from phds.protocol.trust import RevocationList
from phds.trust.attestation import TrustAnchors
from phds.trust.specs import spec_matches_task, verify_signed_spec

log = logging.getLogger(__name__)

_SCOPE = "network"


@dataclass(frozen=True)
class VerifiedTask:
    """A task as the node will run it: the verified requester and the signed study's facts.

    ``first_seen`` is when the node first saw the study (kept in its study memory with the release)."""

    task: Task
    signed: bool
    hospitals: tuple[str, ...]
    first_seen: str | None = None


class TaskVerifier:
    """Verifies tasks against the node's pinned trust keys (module docstring)."""

    def __init__(self, config: NodeConfig, memory: MemoryStore) -> None:
        self.config = config
        self.memory = memory
        keys = config.trust.network_keys
        self.anchors = TrustAnchors(keys) if keys else None
        saved = memory.get(_SCOPE, "revocations")
        if saved is not None and self.anchors is not None:
            self.anchors.accept_revocations(RevocationList.model_validate(saved))

    def accept_revocations(self, revocations: RevocationList) -> bool:
        """Take a newer signed revocation list; keep it in ``node.db``."""
        if self.anchors is None or not self.anchors.accept_revocations(revocations):
            return False
        self.memory.put(_SCOPE, "revocations", revocations.model_dump(mode="json"))
        log.info("revocation list %d accepted", revocations.sequence)
        return True

    def verify(self, task: Task) -> VerifiedTask:
        """The task with its verified requester; :class:`SignatureInvalid` says what did not check."""
        signed = task.signed_spec
        if signed is None:
            if self.config.trust.requires_signatures:
                raise SignatureInvalid(
                    "this hospital runs only studies signed by an attested requester; this one is unsigned"
                )
            return VerifiedTask(task, False, (task.hospital,))
        if self.anchors is None:
            raise SignatureInvalid(
                "this hospital pins no network trust keys, so it cannot check the signature"
            )
        seen = self.memory.get(f"study:{task.study_id}", "first_seen")
        first_seen = datetime.fromisoformat(str(seen)) if seen is not None else datetime.now(UTC)
        who = verify_signed_spec(signed, self.anchors, now=first_seen)
        self.anchors.verify_attestation(signed.attestation)  # revocations as of now
        analysis = get_analysis(task.analysis)
        spec_matches_task(
            signed,
            hospital=task.hospital,
            analysis=task.analysis,
            analysis_version=task.analysis_version,
            params=task.params,
            service_type=task.service_type.value,
            default_version=analysis.version,
        )
        spec = signed.spec
        verified = task.model_copy(
            update={
                "requester": TaskRequester(organisation=who.organisation, category=who.category),
                "study_title": str(spec["title"]),
                "study_purpose": str(spec["purpose"]),
                # The privacy options the requester signed, not the ones the hub relays.
                "dp": DpRequest.model_validate(spec["dp"]) if spec.get("dp") is not None else None,
                "secure_aggregation": bool(spec.get("secure_aggregation", False)),
                "application_id": spec.get("application_id"),
            }
        )
        return VerifiedTask(verified, True, tuple(str(h) for h in spec["hospitals"]), first_seen.isoformat())


__all__ = ["TaskVerifier", "VerifiedTask"]
