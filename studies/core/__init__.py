"""The Django-free core of the studies app: statistics and inference, verdicts, playback plans,
motion encodings, participation settings and figures (tests/test_core_is_django_free.py
checks that none of it imports Django; studies/protocols/ is plain Python too)."""
