"""Database records of the perceptual studies: a study and its stimulus pool, the
participants, their server-decided trials and their answers.

Models know no service: opening, closing and running a study are `studies.assignment`'s
(`open_study`, `close_study`, ...), which imports these, never the other way round.

The answer key of a trial (which side is attacked, which option is the ground truth)
lives in `Trial.correct` / `Trial.design` and in the motion handles' variant; the API
serializers never expose those fields.
"""
from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from studies.core.participation_config import consent_version, validate_series, ParticipationConfigError
from studies.protocols import get_protocol, kind_choices
from studies.protocols.base import ConfigurationError


def new_token() -> str:
    return secrets.token_urlsafe(24)


def new_key() -> str:
    return secrets.token_urlsafe(12)


def new_pseudonym() -> str:
    """The participant id that trial rows and analyses carry (never the PROLIFIC_PID)."""
    return "P" + secrets.token_hex(5).upper()


class Study(models.Model):
    DRAFT, OPEN, CLOSING, CLOSED = "draft", "open", "closing", "closed"
    # closing: no newcomers, but active participants may finish.
    STATUS_CHOICES = [(DRAFT, "draft"), (OPEN, "open"), (CLOSING, "closing"), (CLOSED, "closed")]

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in the participant link /study/<slug>/")
    # Read from the protocol registry when asked, so a new kind needs no migration.
    kind = models.CharField(max_length=30, choices=kind_choices)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=DRAFT)
    configuration = models.JSONField(default=dict, blank=True,
                                     help_text="Protocol configuration; missing keys take the protocol's defaults.")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self):
        return f"{self.name} ({self.kind})"

    @property
    def protocol(self):
        return get_protocol(self.kind)

    @property
    def config(self) -> dict:
        """The validated configuration with every default filled in."""
        return self.protocol.validate(self.configuration)

    def clean(self):
        try:
            self.configuration = self.protocol.validate(self.configuration or {})
        except (ConfigurationError, ValueError) as e:
            raise ValidationError({"configuration": str(e)}) from e

    def save(self, *args, **kwargs):
        # Fill defaults (and the outcome codes) once, so what is stored is what runs.
        self.configuration = self.protocol.validate(self.configuration or {})
        update_fields = kwargs.get("update_fields")
        if self.pk and (update_fields is None or {"configuration", "kind", "status"} & set(update_fields)):
            self._refuse_change_after_opening()
        super().save(*args, **kwargs)

    def _refuse_change_after_opening(self):
        """Answers collected under one configuration must not be analysed as if they came
        from another, so kind and configuration are frozen once the study left draft."""
        stored = Study.objects.filter(pk=self.pk).values("status", "kind", "configuration").first()
        if stored is None or stored["status"] == self.DRAFT:
            return
        if self.status == self.DRAFT:  # back to draft would reopen the configuration to edits
            raise ValidationError({"status": "a study that has opened cannot go back to draft"})
        if stored["kind"] != self.kind:
            raise ValidationError({"kind": f"kind cannot change once the study has opened (it is {stored['kind']})"})
        before = get_protocol(stored["kind"]).validate(stored["configuration"] or {})
        changed = sorted(k for k in set(before) | set(self.configuration)
                         if before.get(k) != self.configuration.get(k))
        if changed:
            raise ValidationError({"configuration": f"the configuration is frozen once the study has opened; "
                                                    f"refused changes to: {', '.join(changed)}"})

    @property
    def consent_version(self) -> str:
        return consent_version(self.config)

    def participant_path(self) -> str:
        return f"/study/{self.slug}/"

    def finish_closing(self) -> bool:
        """A closing study whose last active participant has finished (or timed out) is
        closed (a researcher's test participation left open does not hold it). Called
        after every completion, release and withdrawal; returns whether it closed now."""
        if self.status != self.CLOSING or \
                self.participants.filter(status=Participant.ACTIVE, is_test=False,
                                         is_simulated=False).exists():
            return False
        closed = Study.objects.filter(pk=self.pk, status=self.CLOSING).update(status=self.CLOSED,
                                                                              closed_at=timezone.now())
        self.refresh_from_db(fields=["status", "closed_at"])
        return bool(closed)

    @property
    def takes_answers(self) -> bool:
        return self.status in (self.OPEN, self.CLOSING)

    def progress(self) -> dict:
        counts = dict(self.participants.values_list("status").annotate(n=models.Count("id")).order_by())
        out = {s: counts.get(s, 0) for s, _ in Participant.STATUS_CHOICES}
        out["started"] = sum(out.values())
        return out


class Stimulus(models.Model):
    """One drawable unit of a study's pool (a sample, or one motion attacked by several
    methods); `usage_count` spreads units evenly over participants."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="stimuli")
    condition = models.CharField(max_length=40)
    samples = models.JSONField(help_text="role (method or 'attacked') -> AdversarialSample id")
    usage_count = models.IntegerField(default=0)

    class Meta:
        ordering = ["study", "id"]
        verbose_name_plural = "stimuli"
        indexes = [models.Index(fields=["study", "usage_count"])]

    def __str__(self):
        return f"{self.study.slug} stimulus {self.pk} ({self.condition})"


class MotionHandle(models.Model):
    """Opaque, cacheable name of one motion as shown on one side of a trial.

    Each sample gets four handles (original / attacked x left / right), so a sensitivity
    trial's two identical originals carry different keys and a key says nothing about
    what it shows."""

    ORIGINAL, ADVERSARIAL = "original", "adversarial"
    VARIANTS = [(ORIGINAL, ORIGINAL), (ADVERSARIAL, ADVERSARIAL)]
    SIDES = [("left", "left"), ("right", "right")]

    key = models.CharField(max_length=32, unique=True, default=new_key)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="motion_handles")
    sample = models.ForeignKey("attacks.AdversarialSample", on_delete=models.CASCADE, related_name="study_handles")
    variant = models.CharField(max_length=12, choices=VARIANTS)
    side = models.CharField(max_length=5, choices=SIDES)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "sample", "variant", "side"], name="one_handle_per_view")]

    def __str__(self):
        return self.key

    def motion(self):
        return self.sample.original_motion() if self.variant == self.ORIGINAL else self.sample.adversarial_motion()


class Participant(models.Model):
    ACTIVE, COMPLETED, ABANDONED, SCREENED_OUT = "active", "completed", "abandoned", "screened_out"
    STATUS_CHOICES = [(ACTIVE, "active"), (COMPLETED, "completed"), (ABANDONED, "abandoned"),
                      (SCREENED_OUT, "screened out")]

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    token = models.CharField(max_length=64, unique=True, default=new_token)
    prolific_pid = models.CharField(max_length=64, blank=True)
    prolific_study_id = models.CharField(max_length=64, blank=True)
    prolific_session_id = models.CharField(max_length=64, blank=True)
    consent_at = models.DateTimeField()
    browser = models.JSONField(default=dict, blank=True)
    screen = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=15, choices=STATUS_CHOICES, default=ACTIVE)
    pseudonym = models.CharField(max_length=16, unique=True, default=new_pseudonym,
                                 help_text="Id carried by trial rows and analyses (the PROLIFIC_PID stays here)")
    is_test = models.BooleanField(default=False, help_text="Researcher preview / test run: kept out of every analysis")
    is_simulated = models.BooleanField(default=False, help_text="Made by simulate_participants: reported only "
                                                                "when asked (study_report --simulated), never "
                                                                "beside real participants")
    series_participant = models.ForeignKey("SeriesParticipant", on_delete=models.CASCADE, null=True, blank=True,
                                           related_name="participations")
    consent_version = models.CharField(max_length=64, blank=True, help_text="Version of the consent text agreed to")
    questionnaire = models.JSONField(default=dict, blank=True, help_text="Answers to the study's questionnaire")
    seed = models.BigIntegerField(help_text="Seeds this participant's trial list")
    sensitivity_accuracy = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "started_at"]
        constraints = [models.UniqueConstraint(fields=["study", "prolific_pid"], condition=~Q(prolific_pid=""),
                                               name="one_participation_per_external_id")]
        indexes = [models.Index(fields=["study", "status", "last_seen_at"])]

    def __str__(self):
        return f"participant {self.pk} of {self.study.slug}"

    @property
    def holds_usage(self) -> bool:
        """Whether this participation counts in the stimulus usage (researcher tests and
        simulated participants never change what real participants are shown)."""
        return not (self.is_test or self.is_simulated)


class Trial(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="trials")
    key = models.CharField(max_length=32, unique=True, default=new_key, help_text="Public id of the trial")
    position = models.PositiveIntegerField()
    is_practice = models.BooleanField(default=False)
    condition = models.CharField(max_length=40)
    stimulus = models.ForeignKey(Stimulus, on_delete=models.SET_NULL, null=True, blank=True, related_name="trials")
    left = models.ForeignKey(MotionHandle, on_delete=models.PROTECT, related_name="+")
    right = models.ForeignKey(MotionHandle, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    options = models.JSONField(help_text="[{value, text}] in display order")
    correct = models.CharField(max_length=20, blank=True, help_text="Answer key (never sent before answering)")
    design = models.JSONField(default=dict, blank=True, help_text="Hidden design facts (answer key)")
    served_at = models.DateTimeField(null=True, blank=True, help_text="When the trial was first sent to the browser")
    playback_plan = models.JSONField(default=dict, blank=True,
                                     help_text="Playback schedule sent with the trial (fps, showings, durations)")

    class Meta:
        ordering = ["participant", "position"]
        constraints = [models.UniqueConstraint(fields=["participant", "position"], name="one_trial_per_position")]

    def __str__(self):
        return f"trial {self.position} of participant {self.participant_id}"

    def option_values(self) -> list[str]:
        return [o["value"] for o in self.options]


class Response(models.Model):
    trial = models.OneToOneField(Trial, on_delete=models.CASCADE, related_name="response")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="responses")
    answer = models.CharField(max_length=20)
    is_correct = models.BooleanField(null=True, help_text="Against the answer key, where the trial has one")
    response_time_ms = models.PositiveIntegerField()
    playback = models.JSONField(default=dict, blank=True,
                                help_text="Browser playback log: measured duration, frames drawn, late frames, page hidden")
    flags = models.JSONField(default=list, blank=True,
                             help_text="Server-side findings about this answer, e.g. 'early' (sent before the "
                                       "playback could have ended)")
    submitted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "trial__position"]

    def __str__(self):
        return f"{self.answer} for {self.trial}"


class StudySeries(models.Model):
    """Several studies taken in sequence by one person through one link, with one consent
    and one completion code (the paper's participants did all three studies). Screening
    out in any study of the series excludes the person from all of them."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in the link /series/<slug>/")
    configuration = models.JSONField(default=dict, blank=True,
                                     help_text="consent_text, consent_version, completion codes and redirects")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "study series"

    def __str__(self):
        return self.name

    @property
    def config(self) -> dict:
        return validate_series(self.configuration)

    def clean(self):
        try:
            self.configuration = validate_series(self.configuration or {})
        except ParticipationConfigError as e:
            raise ValidationError({"configuration": str(e)}) from e

    def save(self, *args, **kwargs):
        # Codes drawn once, so every participant of the series leaves with the same ones.
        self.configuration = validate_series(self.configuration or {})
        super().save(*args, **kwargs)

    def participant_path(self) -> str:
        return f"/series/{self.slug}/"

    def ordered_studies(self) -> list[Study]:
        return [entry.study for entry in self.entries.select_related("study").order_by("position")]


class SeriesStudy(models.Model):
    series = models.ForeignKey(StudySeries, on_delete=models.CASCADE, related_name="entries")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series_entries")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["series", "position"]
        constraints = [models.UniqueConstraint(fields=["series", "position"], name="one_study_per_series_position"),
                       models.UniqueConstraint(fields=["series", "study"], name="study_once_per_series")]


class SeriesParticipant(models.Model):
    """One person going through a series: one consent, then one Participant per study."""

    ACTIVE, COMPLETED, SCREENED_OUT = "active", "completed", "screened_out"
    STATUS_CHOICES = [(ACTIVE, "active"), (COMPLETED, "completed"), (SCREENED_OUT, "screened out")]

    series = models.ForeignKey(StudySeries, on_delete=models.CASCADE, related_name="participants")
    token = models.CharField(max_length=64, unique=True, default=new_token)
    prolific_pid = models.CharField(max_length=64, blank=True)
    prolific_study_id = models.CharField(max_length=64, blank=True)
    prolific_session_id = models.CharField(max_length=64, blank=True)
    consent_at = models.DateTimeField()
    consent_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=15, choices=STATUS_CHOICES, default=ACTIVE)
    is_test = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "prolific_pid"], condition=~Q(prolific_pid=""),
                                               name="one_series_participation_per_external_id")]

    def __str__(self):
        return f"series participant {self.pk} of {self.series.slug}"
