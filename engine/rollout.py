"""How a deploy spreads its switch over the hosts: all at once, one by one, or
a canary first and then batches. Pure values and arithmetic, no I/O.

Every host is prepared before the first batch switches (see
:mod:`engine.pipeline`); this module only says which hosts switch together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class Strategy(StrEnum):
    ALL_AT_ONCE = "all_at_once"
    ONE_BY_ONE = "one_by_one"
    CANARY = "canary"


@dataclass(frozen=True)
class Rollout:
    """The batches of one deploy.

    ``canary`` hosts switch first; after them, batches of ``batch_size``
    hosts, or else of ``batch_percent`` percent of all hosts (rounded up);
    with neither, the rest switch together. ``promote`` makes every batch
    after the first wait for a person's "promote".
    """

    strategy: Strategy = Strategy.ALL_AT_ONCE
    canary: int = 1
    batch_size: int = 0
    batch_percent: int = 0
    promote: bool = False


ALL_AT_ONCE = Rollout()


def check(rollout: Rollout) -> None:
    """Raise ValueError for sizes that make no batches."""
    if rollout.strategy not in tuple(Strategy):
        raise ValueError(f"unknown rollout strategy {rollout.strategy!r}")
    if rollout.canary < 1:
        raise ValueError("the canary must be at least one host")
    if rollout.batch_size < 0:
        raise ValueError("the batch size must not be negative")
    if not 0 <= rollout.batch_percent <= 100:
        raise ValueError("the batch percentage must be between 0 and 100")


def later_batch_size(rollout: Rollout, total: int) -> int:
    """Hosts per batch after the canary (0 = all the rest together)."""
    if rollout.batch_size:
        return rollout.batch_size
    if rollout.batch_percent:
        return max(1, math.ceil(total * rollout.batch_percent / 100))
    return 0


def batches(hosts: Sequence[T], rollout: Rollout) -> list[list[T]]:
    """``hosts`` in switch order, cut into batches; never an empty batch."""
    hosts = list(hosts)
    if not hosts:
        return []
    if rollout.strategy == Strategy.ALL_AT_ONCE:
        return [hosts]
    if rollout.strategy == Strategy.ONE_BY_ONE:
        return [[host] for host in hosts]
    first, rest = hosts[: rollout.canary], hosts[rollout.canary :]
    size = later_batch_size(rollout, len(hosts)) or max(1, len(rest))
    return [first] + [rest[i : i + size] for i in range(0, len(rest), size)]
