"""Sending pace shared by every worker through Redis: token buckets per workspace and per recipient domain,
and the backoff of a domain that answers 4xx (halved on trouble, regained a little with each success)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings


class Reason:
    """`Message.deferred_reason` of messages the pace (or a pause, or the frequency cap) held back."""

    RATE_LIMIT = "rate_limit"
    DOMAIN_RATE = "domain_rate"
    DOMAIN_BACKOFF = "domain_backoff"
    FREQUENCY_CAP = "frequency_cap"
    WORKSPACE_PAUSED = "workspace_paused"
    CAMPAIGN_PAUSED = "campaign_paused"


KEY_PREFIX = "es:pace"
# Idle buckets and a domain's backoff state expire: a domain quiet for an hour starts again at full rate.
STATE_TTL_MS = 3600 * 1000

# One token bucket per key (hash: tokens, ts, and for a backed-off domain its lowered rate). The burst is
# one second of the rate (at least one token). ARGV: now ("" = the Redis server's clock, shared by every
# worker), then per key its configured rate and how many messages this batch already handed back for it
# (so that their retry times line up one after another), then the message count and per message the
# index of its workspace key and of its domain key (0: no domain limit). Tokens are taken greedily in
# order: a message gets one token from each of its buckets or none. Returns per message a code (0
# granted, 1 workspace rate, 2 domain rate, 3 domain backed off) and the wait in milliseconds until it
# could go, then per key 1 if it is backed off.
_ACQUIRE = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local nkeys = #KEYS
local tokens, rates, queued, backed = {}, {}, {}, {}
for i = 1, nkeys do
  local rate = tonumber(ARGV[2 * i])
  queued[i] = tonumber(ARGV[2 * i + 1])
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'ts', 'rate')
  local lowered = tonumber(h[3])
  backed[i] = 0
  if lowered and lowered < rate then
    rate = lowered
    backed[i] = 1
  end
  local burst = math.max(rate, 1)
  local t, ts = tonumber(h[1]), tonumber(h[2])
  if t == nil or ts == nil then
    t = burst
  else
    t = math.min(burst, t + math.max(0, now - ts) * rate)
  end
  tokens[i], rates[i] = t, rate
end
local base = 2 * nkeys + 2
local n = tonumber(ARGV[base])
local out = {}
for j = 1, n do
  local a = tonumber(ARGV[base + 2 * j - 1])
  local b = tonumber(ARGV[base + 2 * j])
  if tokens[a] >= 1 and (b == 0 or tokens[b] >= 1) then
    tokens[a] = tokens[a] - 1
    if b > 0 then tokens[b] = tokens[b] - 1 end
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    local wait_a = math.max(0, (queued[a] + 1 - tokens[a]) / rates[a])
    local wait, code = wait_a, 1
    if b > 0 then
      local wait_b = math.max(0, (queued[b] + 1 - tokens[b]) / rates[b])
      if tokens[b] < 1 and (tokens[a] >= 1 or wait_b > wait_a) then
        wait = wait_b
        code = 2 + backed[b]
      else
        wait = math.max(wait_a, wait_b)
      end
      queued[b] = queued[b] + 1
    end
    queued[a] = queued[a] + 1
    out[#out + 1] = code
    out[#out + 1] = math.ceil(wait * 1000)
  end
end
for i = 1, nkeys do
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i]), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], ARGV[base + 2 * n + 1])
  out[#out + 1] = backed[i]
end
return out
"""

# Additive increase, multiplicative decrease of a domain's rate. KEYS: domain buckets. ARGV: floor, step
# (messages/second regained per successful send), ttl, then per key its configured rate, 4xx answers
# and successes. A 4xx halves the rate once per call (one chunk's answers are one signal), down to the
# floor; otherwise each success adds `step`, and at the configured rate the lowered rate is forgotten.
# Returns each domain's rate afterwards, as a string (Lua numbers would be truncated to integers).
_FEEDBACK = """
local floor, step, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 1, #KEYS do
  local configured = tonumber(ARGV[3 * i + 1])
  local failures, successes = tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  local rate = tonumber(redis.call('HGET', KEYS[i], 'rate')) or configured
  if failures > 0 then
    rate = math.max(math.min(floor, configured), rate / 2)
  else
    rate = rate + successes * step
  end
  if rate >= configured then
    redis.call('HDEL', KEYS[i], 'rate')
    rate = configured
  else
    redis.call('HSET', KEYS[i], 'rate', tostring(rate))
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
  out[i] = tostring(rate)
end
return out
"""

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """One client (and connection pool) per process for settings.REDIS_URL; a unix socket works too."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return client


def workspace_key(workspace_id: int) -> str:
    return f"{KEY_PREFIX}:ws:{workspace_id}"


def domain_key(domain: str) -> str:
    return f"{KEY_PREFIX}:domain:{domain}"


def domain_limit(domain: str) -> float:
    """Messages per second allowed to `domain` across every workspace (0: no limit)."""
    limits: dict[str, float] = settings.DELIVERY_DOMAIN_LIMITS
    return float(limits.get(domain, settings.DELIVERY_DOMAIN_LIMIT_DEFAULT) or 0)


@dataclass(frozen=True)
class PaceItem:
    """One message asking to go: its id, workspace, the workspace's rate and the recipient's domain."""

    message_id: int
    workspace_id: int
    workspace_rate: float
    domain: str


@dataclass(frozen=True)
class Denial:
    reason: str
    wait: float  # seconds until the message could go


@dataclass
class Pacer:
    """The pace of one batch: takes tokens for a chunk in one Redis call, and remembers how many
    messages it already handed back per bucket so that their retry times follow one another.

    `now` is for tests (a fixed clock); by default the Redis server's clock is used.
    """

    now: float | None = None
    client: Any = None
    queued: dict[str, int] = field(default_factory=dict)
    backed_off: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.client = self.client or redis_client()

    def acquire(self, items: Sequence[PaceItem]) -> dict[int, Denial]:
        """Take a token for each item that may go now; returns why, and for how long, the others may not."""
        if not items:
            return {}
        keys: list[str] = []
        rates: list[float] = []
        index: dict[str, int] = {}

        def key_index(key: str, rate: float) -> int:
            if key not in index:
                keys.append(key)
                rates.append(rate)
                index[key] = len(keys)
            return index[key]

        pairs: list[int] = []
        for item in items:
            pairs.append(key_index(workspace_key(item.workspace_id), max(float(item.workspace_rate), 0.001)))
            limit = domain_limit(item.domain)
            pairs.append(key_index(domain_key(item.domain), limit) if limit > 0 else 0)
        args: list[Any] = ["" if self.now is None else repr(self.now)]
        for key, rate in zip(keys, rates, strict=True):
            args += [repr(rate), self.queued.get(key, 0)]
        args += [len(items), *pairs, STATE_TTL_MS]
        reply = self.client.eval(_ACQUIRE, len(keys), *keys, *args)
        denials: dict[int, Denial] = {}
        for position, item in enumerate(items):
            code, wait_ms = int(reply[2 * position]), int(reply[2 * position + 1])
            if code == 0:
                continue
            reason = {1: Reason.RATE_LIMIT, 2: Reason.DOMAIN_RATE, 3: Reason.DOMAIN_BACKOFF}[code]
            denials[item.message_id] = Denial(reason=reason, wait=wait_ms / 1000)
        for key, flag in zip(keys, reply[2 * len(items) :], strict=True):
            if int(flag) and key.startswith(f"{KEY_PREFIX}:domain:"):
                self.backed_off.add(key.rpartition(":domain:")[2])
        return denials

    def handed_back(self, items: Sequence[PaceItem]) -> None:
        """These denied messages go back to the outbox: later denials of this batch queue behind them."""
        for item in items:
            keys = [workspace_key(item.workspace_id)]
            if domain_limit(item.domain) > 0:
                keys.append(domain_key(item.domain))
            for key in keys:
                self.queued[key] = self.queued.get(key, 0) + 1

    def feedback(self, *, failures: dict[str, int], successes: dict[str, int]) -> dict[str, float]:
        """Lower the rate of domains that answered 4xx, raise backed-off ones that accepted; one Redis call.
        Only domains with a limit take part. Returns their rates afterwards."""
        domains = sorted(
            domain
            for domain in {*failures, *(d for d in successes if d in self.backed_off)}
            if domain_limit(domain) > 0
        )
        if not domains:
            return {}
        args: list[Any] = [
            repr(float(settings.DELIVERY_DOMAIN_BACKOFF_FLOOR)),
            repr(float(settings.DELIVERY_DOMAIN_RECOVERY_STEP)),
            STATE_TTL_MS,
        ]
        for domain in domains:
            args += [repr(domain_limit(domain)), failures.get(domain, 0), successes.get(domain, 0)]
        reply = self.client.eval(_FEEDBACK, len(domains), *[domain_key(d) for d in domains], *args)
        rates = {domain: float(rate) for domain, rate in zip(domains, reply, strict=True)}
        for domain, rate in rates.items():
            if rate < domain_limit(domain):
                self.backed_off.add(domain)
            else:
                self.backed_off.discard(domain)
        return rates


def domain_rate_current(domain: str) -> float:
    """The rate `domain` is allowed now: its limit, or less while it is backed off (0: no limit)."""
    limit = domain_limit(domain)
    if limit <= 0:
        return 0
    lowered = redis_client().hget(domain_key(domain), "rate")
    return min(limit, float(lowered)) if lowered is not None else limit
