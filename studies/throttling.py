"""Rate limits of the participant API: one counter per client IP, one per participation token.

Rates live in `settings.PARTICIPANT_THROTTLE_RATES` and are read on every request (not
frozen at import as DRF's own `THROTTLE_RATES` are), so deployments set them through
the environment and tests through `override_settings`. An empty rate disables a limit.
Counters live in Django's cache: use a shared cache (Redis) when gunicorn runs several
workers, otherwise each worker counts on its own.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    def __init__(self):  # the parent reads the rate once, at class level; read it per request
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self):
        return settings.PARTICIPANT_THROTTLE_RATES.get(self.scope) or None

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        return super().allow_request(request, view)


class ParticipantIPThrottle(_SettingsRateThrottle):
    """Every participant endpoint, counted per client address (X-Forwarded-For with NUM_PROXIES)."""

    scope = "participant_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ParticipantTokenThrottle(_SettingsRateThrottle):
    """Endpoints addressed by a participation token, counted per token (whatever the address)."""

    scope = "participant_token"

    def get_cache_key(self, request, view):
        token = getattr(view, "kwargs", {}).get("token")
        if not token:
            return None  # not a participation endpoint: only the per-IP limit applies
        return self.cache_format % {"scope": self.scope, "ident": token}


PARTICIPANT_THROTTLES = [ParticipantIPThrottle, ParticipantTokenThrottle]


class ThrottledEarly:
    """Views mix this in to check the limits before they look up a token or slug (so that
    guessing tokens is limited too); DRF's own later check then does not count twice.

    Both limits are checked with one cache read and one write (`get_many` / `set_many`:
    a round trip each with Redis, where DRF's loop makes two per limit), with DRF's
    sliding-window semantics: a refused request is not counted against the limit that
    refused it."""

    throttle_classes = PARTICIPANT_THROTTLES

    def check_throttles(self, request):
        if getattr(self, "_throttles_checked", False):
            return
        self._throttles_checked = True
        keyed = [(t, t.get_cache_key(request, self)) for t in self.get_throttles() if t.rate is not None]
        keyed = [(t, key) for t, key in keyed if key is not None]
        if not keyed:
            return
        cache, now = keyed[0][0].cache, keyed[0][0].timer()
        histories = cache.get_many([key for _, key in keyed])
        waits, counted = [], {}
        for throttle, key in keyed:
            throttle.key, throttle.now = key, now
            throttle.history = [t for t in histories.get(key, []) if t > now - throttle.duration]
            if len(throttle.history) >= throttle.num_requests:
                waits.append(throttle.wait())
            else:
                counted[key] = [now, *throttle.history]
        if counted:
            cache.set_many(counted, max(t.duration for t, _ in keyed))
        if waits:
            self.throttled(request, max((w for w in waits if w is not None), default=None))
