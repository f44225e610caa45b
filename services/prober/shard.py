"""Which prober probes which camera: rendezvous (highest-random-weight) hashing of camera_id.

With n probers started as shard 0/n .. n-1/n, each camera belongs to exactly one of them,
decided from its id alone (no coordination, stable across restarts and hosts), and going from
n to n+1 probers moves only the cameras the new shard wins (about 1/(n+1) of them).
"""

from __future__ import annotations

import hashlib

from cctv.exceptions import ConfigError


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` -> (i, n), with 0 <= i < n."""
    index_text, sep, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index, count = -1, 0
    if not sep or count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard: expected i/n with n >= 1 and 0 <= i < n, got {text!r}")
    return index, count


def _weight(shard: int, camera_id: str) -> int:
    digest = hashlib.blake2b(f"{shard}\x1f{camera_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(camera_id: str, count: int) -> int:
    """The shard (0..count-1) that probes `camera_id`."""
    return max(range(count), key=lambda shard: _weight(shard, camera_id))


def mine(camera_id: str, shard: tuple[int, int]) -> bool:
    index, count = shard
    return count == 1 or owner(camera_id, count) == index
