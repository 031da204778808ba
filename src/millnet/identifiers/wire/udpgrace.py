"""Response rate limiting for UDP answers above the amplification budget (DNS RRL's idea).

The transport's rule (:mod:`.transport`) sends over UDP at most four times what the request
datagram weighed. Standard Handle clients pay dearly for a withheld answer: hdllib and the
SDKs built on it cannot use the truncation notice and ask over TCP only after their UDP retries
(0.5 + 1 + 1.5 s). A prefix record asked without a type filter (HS_ADMIN, HS_SITE, HS_VLIST:
~400 octets for a ~75-octet request), or a site with servers that carry public keys, is over
the budget, and it is the first thing every client asks for.

So an answer over the budget may still be sent whole over UDP, within two token buckets of
octets (the whole answer is charged, every datagram with its envelope):

* one per source **network** (IPv4 /24, IPv6 /56: a forged source is a victim's address, and
  its neighbours are the same victim): :data:`NETWORK_BURST` octets, refilled at
  :data:`NETWORK_RATE` per second; a client bootstrapping a few prefixes fits in the burst,
  a cache asking for a new prefix record every few seconds fits in the rate;
* one for the whole process, :data:`TOTAL_BURST` refilled at :data:`TOTAL_RATE`, so that a
  flood from forged sources spread over many networks (every new network starts with a full
  bucket) cannot turn the node into a large reflector either.

Only answers of at most :data:`MAX_ANSWER` octets (four 512-octet datagrams, which hdllib and
the CAICT SDK reassemble) qualify. Beyond the buckets the client gets the truncation notice, as
before: a legitimate client is slowed down, never refused (TCP answers it).

What a reflection through one node can therefore aim at one victim network: four times what
the attacker sends, plus at most :data:`NETWORK_BURST` + :data:`NETWORK_RATE` octets per second
(per node process); at all victims together, :data:`TOTAL_RATE` per second more.

Memory is bounded: networks are kept in two generations of at most :data:`MAX_NETWORKS`
each, rotated every ``burst / rate`` seconds (4 s): a network not seen for a whole
generation would have a full bucket again, so forgetting it changes nothing. When a
generation is full, new networks get no grace until the next rotation.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from millnet.protocols.handle.constants import UDP_PACKET_SIZE

#: octets one source network may receive above the budget at once...
NETWORK_BURST = 16 << 10
#: ...and per second after that
NETWORK_RATE = 4 << 10
#: octets the whole process may send above the budget at once, and per second
TOTAL_BURST = 256 << 10
TOTAL_RATE = 256 << 10
#: the largest answer (all its datagrams) that may be sent above the budget
MAX_ANSWER = 4 * UDP_PACKET_SIZE
#: source networks remembered per generation
MAX_NETWORKS = 16_384


def network_of(host: str) -> str:
    """The network a source address is charged to: IPv4 /24 (also when IPv4-mapped in IPv6),
    IPv6 /56."""
    if ":" not in host:
        return host.rpartition(".")[0]
    try:
        packed = ipaddress.IPv6Address(host.partition("%")[0]).packed
    except ValueError:
        return host
    if packed[:12] == bytes(10) + b"\xff\xff":
        return ".".join(map(str, packed[12:15]))
    return packed[:7].hex()


@dataclass
class GraceStats:
    #: answers sent above the budget
    granted: int = 0
    #: answers over the budget refused grace (too large, or a bucket empty)
    refused: int = 0


@dataclass
class ReflectionLimiter:
    """``allow(host, size)``: may an answer of ``size`` octets, over the amplification budget,
    go to ``host`` over UDP now? Charges the buckets when it says yes."""

    network_burst: int = NETWORK_BURST
    network_rate: float = NETWORK_RATE
    total_burst: int = TOTAL_BURST
    total_rate: float = TOTAL_RATE
    max_answer: int = MAX_ANSWER
    max_networks: int = MAX_NETWORKS
    clock: Callable[[], float] = time.monotonic
    stats: GraceStats = field(default_factory=GraceStats)

    def __post_init__(self) -> None:
        now = self.clock()
        self._total, self._total_at = float(self.total_burst), now
        #: network -> (tokens, when they were counted); the current and previous generation
        self._current: dict[str, tuple[float, float]] = {}
        self._previous: dict[str, tuple[float, float]] = {}
        self._rotated = now
        self._period = self.network_burst / self.network_rate if self.network_rate else 1.0

    def allow(self, host: str, size: int) -> bool:
        granted = size <= self.max_answer and self._take(host, size)
        if granted:
            self.stats.granted += 1
        else:
            self.stats.refused += 1
        return granted

    def _take(self, host: str, size: int) -> bool:
        now = self.clock()
        if now - self._rotated >= self._period:
            self._previous, self._current = self._current, {}
            self._rotated = now
        total = min(float(self.total_burst),
                    self._total + (now - self._total_at) * self.total_rate)
        self._total, self._total_at = total, now
        if total < size:
            return False
        key = network_of(host)
        entry = self._current.get(key)
        if entry is None:
            entry = self._previous.pop(key, None)
        if entry is None:
            if len(self._current) >= self.max_networks:
                return False
            tokens = float(self.network_burst)
        else:
            tokens = min(float(self.network_burst),
                         entry[0] + (now - entry[1]) * self.network_rate)
        if tokens < size:
            self._current[key] = (tokens, now)
            return False
        self._current[key] = (tokens - size, now)
        self._total = total - size
        return True

    @property
    def networks(self) -> int:
        """Networks remembered (both generations)."""
        return len(self._current) + len(self._previous)
