"""The mask PRG (ChaCha20) and the X25519/HKDF/AES-GCM share encryption."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from phds.errors import InputError, SignatureInvalid
from phds.secagg.keys import EphemeralKey, agree, open_share, public_from_b64, seal_share
from phds.secagg.prg import mask


@settings(max_examples=50, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), length=st.integers(0, 300))
def test_the_same_seed_gives_the_same_mask_and_prefixes_agree(seed: bytes, length: int) -> None:
    words = mask(seed, length)
    assert words.dtype == np.uint64 and words.shape == (length,)
    assert np.array_equal(words, mask(seed, length))
    assert np.array_equal(mask(seed, length + 7)[:length], words)


def test_the_mask_is_the_chacha20_keystream_in_little_endian_words() -> None:
    seed = bytes(range(32))
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor().update(bytes(80))
    assert mask(seed, 10).tolist() == [int.from_bytes(stream[i : i + 8], "little") for i in range(0, 80, 8)]
    assert not np.array_equal(mask(seed, 10), mask(bytes(31) + b"\x01", 10))


def test_a_hundred_thousand_words_are_fast() -> None:
    start = time.perf_counter()
    words = mask(os.urandom(32), 100_000)
    assert time.perf_counter() - start < 0.5  # generous: ~1 ms in practice
    assert words.flags.writeable and len(np.unique(words)) == 100_000


@pytest.mark.parametrize(("seed", "length"), [(b"x" * 31, 1), (b"x" * 32, -1), (b"x" * 32, 2**40)])
def test_bad_mask_arguments_are_refused(seed: bytes, length: int) -> None:
    with pytest.raises(InputError):
        mask(seed, length)


def test_both_ends_agree_on_a_key_bound_to_its_info() -> None:
    u, v = EphemeralKey.generate(), EphemeralKey.generate()
    key = agree(u, v.public_b64, b"session-1")
    assert key == agree(v, u.public_b64, b"session-1") and len(key) == 32
    assert key != agree(u, v.public_b64, b"session-2")
    assert EphemeralKey.from_raw(u.raw).public_b64 == u.public_b64
    assert len(u.public_b64) == 43 and "=" not in u.public_b64
    assert u.public_b64 in repr(u) and u.raw.hex() not in repr(u)


def test_a_sealed_share_opens_only_with_its_key_and_associated_data() -> None:
    key = os.urandom(32)
    sealed = seal_share(key, b"share", b"s|u|v|1")
    assert len(sealed) == 12 + 5 + 16 and sealed != seal_share(key, b"share", b"s|u|v|1")  # fresh nonce
    assert open_share(key, sealed, b"s|u|v|1") == b"share"
    for bad_key, ad, blob in [
        (os.urandom(32), b"s|u|v|1", sealed),
        (key, b"s|u|w|1", sealed),
        (key, b"s|u|v|1", sealed[:-1] + bytes([sealed[-1] ^ 1])),
        (key, b"s|u|v|1", sealed[:10]),
    ]:
        with pytest.raises(SignatureInvalid):
            open_share(bad_key, blob, ad)


def test_malformed_public_keys_are_input_errors() -> None:
    with pytest.raises(InputError):
        public_from_b64("abc")
    with pytest.raises(InputError, match="degenerate"):
        agree(EphemeralKey.generate(), "A" * 43, b"x")  # the all-zero point
