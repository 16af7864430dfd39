"""The studies app's one error hierarchy (the attacks app's is `attacks.core.errors`).

A `StudyError` is a failure whose message is meant for the researcher or participant who
caused it: a study configuration or participation key that cannot run (`StudyInputError`,
also a `ValueError`, so validation code that catches `ValueError` keeps working), a
Prolific ID that started already elsewhere, a series whose next study is closed. Commands
and forms catch these and show the message; anything else is a bug.
"""


class StudyError(Exception):
    """A failure whose message is meant for the person who caused it."""


class StudyInputError(StudyError, ValueError):
    """A configuration or key that cannot run; the message names the key."""
