"""Fixtures of the trust tests: an operator's trust folder, a requester with an attestation, a node key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phds.trust import KeyPair, NetworkTrust, OrganisationAttestation, TrustAnchors


@pytest.fixture
def trust(tmp_path: Path) -> NetworkTrust:
    return NetworkTrust.init(tmp_path / "network-trust")


@pytest.fixture
def requester() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture
def attestation(trust: NetworkTrust, requester: KeyPair) -> OrganisationAttestation:
    return trust.sign_organisation("ucl", "academic", requester.public_key_b64)


@pytest.fixture
def anchors(trust: NetworkTrust) -> TrustAnchors:
    return TrustAnchors(trust.public_keys())


@pytest.fixture
def node_key() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture
def spec() -> dict[str, Any]:
    return {
        "title": "Asthma admissions",
        "purpose": "Feasibility of a paediatric asthma cohort",
        "organisation": "ucl",
        "service_type": "analytical_study",
        "hospitals": ["gosh", "bambino-gesu"],
        "analysis": {"name": "mean_variance", "version": None, "params": {"column": "age", "bins": [0, 1.5]}},
        "deadline_seconds": 600,
    }
