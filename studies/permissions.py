"""Participant-facing rules, one DRF permission each (views compose them).

Views set `view.study` / `view.participant` before permissions run; object
permissions receive the trial an answer is addressed to.
"""
from __future__ import annotations

from rest_framework.permissions import BasePermission

from .models import Participant, Study


class StudyIsOpen(BasePermission):
    message = "This study is not accepting answers (it is not open)."

    def has_permission(self, request, view):
        return view.study.status == Study.OPEN


class StudyHasRoom(BasePermission):
    """A study with a target number of participants stops taking new ones at the target
    (abandoned participations do not count)."""

    message = "This study has reached its target number of participants."

    def has_permission(self, request, view):
        target = view.study.config["target_participants"]
        if not target:
            return True
        return view.study.participants.exclude(status=Participant.ABANDONED).count() < target


class ParticipationIsLive(BasePermission):
    """Abandoned participations must be reactivated by the view before answering."""

    message = "This participation has expired."

    def has_permission(self, request, view):
        return view.participant.status != Participant.ABANDONED


class OwnsTrial(BasePermission):
    message = "This trial belongs to another participation."

    def has_object_permission(self, request, view, trial):
        return trial.participant_id == view.participant.id


class TrialReached(BasePermission):
    """Answers arrive in order: the current (first unanswered) trial, or a repeat of an
    already answered one (idempotent retry)."""

    message = "This trial has not been reached yet; answer the current trial first."

    def has_object_permission(self, request, view, trial):
        if hasattr(trial, "response"):
            return True
        current = view.current
        return current is not None and trial.position <= current.position
