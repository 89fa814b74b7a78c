"""The one canonical JSON of PHDS: the exact bytes that are hashed and signed.

Sorted keys, no whitespace, UTF-8 text (not ``\\u`` escapes), and no NaN or infinity, so equal JSON values
give equal bytes. Audit hashes, approval bindings, cohort fingerprints, study-spec signatures and release
envelopes all hash :func:`canonical_bytes`; a second encoder with other bytes would break them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, no NaN: the exact text that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    """:func:`canonical_json` as UTF-8 bytes."""
    return canonical_json(value).encode("utf-8")


def canonical_hash(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


__all__ = ["canonical_bytes", "canonical_hash", "canonical_json"]
