"""The hashing trick with a hash that never changes.

Python's ``hash()`` is salted per process and Polars' ``hash()`` may change between
releases, so neither can put a category in the same bucket at training and at serving.
Here each *distinct* value is hashed once with BLAKE2b (keyed by a fixed personalisation
string, UTF-8 bytes in, 8 bytes out); rows are then mapped to their value's bucket with
vectorised lookups. The low bits choose the bucket, the top bit the sign (signed hashing
keeps collisions from adding up in expectation).

A bucket is encoded with its sign as one integer, ``sign * (bucket + 1)``, so 0 can mean
"no value" (a null).

>>> signed_buckets(["JFK", "LGA", "EWR"], 32).tolist()
[7, -23, -24]
>>> bucket, sign = split_signed(signed_buckets(["JFK"], 32))
>>> bucket.tolist(), sign.tolist()
([6], [1.0])
>>> signed_bucket("LGA", 32)
-23
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

__all__ = ["HASH_VERSION", "signed_bucket", "signed_buckets", "split_signed"]

# Part of the saved format: changing the function below means a new HASH_VERSION.
HASH_VERSION = 1
_PERSON = b"forgeml-hash-v1"


def _digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode("utf-8"), digest_size=8, person=_PERSON).digest()


def signed_buckets(values: Iterable[str], buckets: int) -> np.ndarray:
    """``sign * (bucket + 1)`` (int32) of each value, stable across processes and versions."""
    digests = b"".join(_digest(v) for v in values)
    h = np.frombuffer(digests, dtype="<u8")
    bucket = (h % np.uint64(buckets)).astype(np.int32) + 1
    negative = (h >> np.uint64(63)).astype(bool)
    return np.where(negative, -bucket, bucket).astype(np.int32)


def signed_bucket(value: str, buckets: int) -> int:
    """:func:`signed_buckets` of one value, without NumPy (the record fast path).

    >>> signed_bucket("JFK", 32) == int(signed_buckets(["JFK"], 32)[0])
    True
    """
    h = int.from_bytes(_digest(value), "little")
    bucket = h % buckets + 1
    return -bucket if h >> 63 else bucket


def split_signed(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bucket index (int64) and sign (+1/-1, float32) of signed codes (none may be 0)."""
    return np.abs(codes).astype(np.int64) - 1, np.sign(codes).astype(np.float32)
