"""Parsing of repeated KEY=VALUE command-line options into typed dicts."""
import json

from django.core.management.base import CommandError


def parse_key_values(pairs, flag):
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
