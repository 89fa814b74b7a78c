"""The pseudorandom generator that expands a 32-byte seed into a mask in Z_{2^64}^m (Bonawitz et al.
2017, §3 "Pseudorandom Generator" and §4: PRG(b_u) and PRG(s_{u,v})).

PRG(seed) is the ChaCha20 keystream (RFC 8439, via ``cryptography``/OpenSSL) under key = seed, read as
little-endian 64-bit words. ``cryptography`` takes a 16-byte nonce (a 32-bit little-endian block
counter followed by the RFC 8439 96-bit nonce); it is all zeros here, which is safe because every seed
is used for one stream only: b_u is fresh randomness and each pairwise seed is derived per session
(:func:`phds.secagg.keys.agree`). Encrypting zero bytes yields the raw keystream.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from phds.errors import InputError

SEED_BYTES = 32
NONCE = bytes(16)
MAX_LENGTH = 2**27
"""Most words in one mask (1 GiB of keystream), well inside ChaCha20's 2^32 blocks of 64 bytes."""


def mask(seed: bytes, length: int) -> npt.NDArray[np.uint64]:
    """*length* pseudorandom uint64 words from *seed* (32 bytes); the same seed gives the same words."""
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise InputError(f"the seed must be {SEED_BYTES} bytes", field="seed")
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= MAX_LENGTH:
        raise InputError(f"length must be an integer in 0..{MAX_LENGTH}", field="length")
    encryptor = Cipher(algorithms.ChaCha20(seed, NONCE), mode=None).encryptor()
    stream = encryptor.update(bytes(8 * length))  # zeros ⊕ keystream = keystream
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)  # a writable, native-order copy


__all__ = ["SEED_BYTES", "mask"]
