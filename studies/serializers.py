"""Validation of what participants send and the shape of what they receive.

Input serializers validate request bodies; output serializers produce every response
body the views send (`Serializer(data).data`), and the views' `extend_schema` names the
same classes, so the OpenAPI schema at /api/schema/ is the declaration the bodies are
built from, not a description written beside them (tests/test_studies_schema.py checks
real responses against it). Every output field is declared with its type, nested
objects as serializers of their own, so the schema has no untyped objects to drift in.

Output serializers are built field by field from what a participant may see: no sample
ids, methods, variants, correct answers or design facts ever enter them.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from studies.core.participation_config import CODED_OUTCOMES, check_questionnaire_answers
from studies.core.payloads import FORMAT as MOTION_FORMAT
from studies.models import MotionHandle, Participant, SeriesParticipant, Study


EXTERNAL_ID = dict(required=False, allow_blank=True, max_length=64, default="")


class StartParticipationSerializer(serializers.Serializer):
    """Consent plus the crowdsourcing ids from the study URL, browser facts, the answers
    to the study's questionnaire (context `questionnaire`: its questions) and, to resume
    an existing participation of the same PROLIFIC_PID, the token the browser kept."""

    consent = serializers.BooleanField()
    PROLIFIC_PID = serializers.CharField(**EXTERNAL_ID)
    STUDY_ID = serializers.CharField(**EXTERNAL_ID)
    SESSION_ID = serializers.CharField(**EXTERNAL_ID)
    browser = serializers.DictField(required=False, default=dict)
    screen = serializers.DictField(required=False, default=dict)
    questionnaire = serializers.DictField(child=serializers.CharField(max_length=100, allow_blank=True),
                                          required=False, default=dict)
    resume_token = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    test = serializers.BooleanField(required=False, default=False,
                                    help_text="A researcher's test participation (logged-in staff only)")

    def validate_consent(self, value):
        if value is not True:
            raise serializers.ValidationError("Consent is required to take part.")
        return value

    def validate_questionnaire(self, value):
        # Required answers are checked for newcomers only (`require_answers`): a returning
        # participant's browser does not send the questionnaire again.
        self.raise_for(check_questionnaire_answers(self.context.get("questionnaire", []), value, require=False))
        return {k: v for k, v in value.items() if v != ""}

    def require_answers(self):
        """Every required question answered (a newcomer's start)."""
        self.raise_for(check_questionnaire_answers(self.context.get("questionnaire", []),
                                                   self.validated_data["questionnaire"]), key="questionnaire")

    @staticmethod
    def raise_for(errors: dict, key: str | None = None):
        if errors:
            detail = {name: [why] for name, why in errors.items()}
            raise serializers.ValidationError({key: detail} if key else detail)

    def validate(self, attrs):
        for key in ("browser", "screen"):
            if len(str(attrs[key])) > 4000:
                raise serializers.ValidationError({key: "too large"})
        return attrs


class PlaybackLogSerializer(serializers.Serializer):
    measured_duration_ms = serializers.FloatField(min_value=0, required=False)
    frames_drawn = serializers.IntegerField(min_value=0, required=False)
    late_frames = serializers.IntegerField(min_value=0, required=False)
    page_hidden = serializers.BooleanField(required=False)
    # What the player measured beside the four required facts, kept so analyses can judge timing.
    expected_duration_ms = serializers.FloatField(min_value=0, required=False)
    median_frame_interval_ms = serializers.FloatField(min_value=0, required=False)
    max_frame_interval_ms = serializers.FloatField(min_value=0, required=False)
    final_frame_interval_ms = serializers.FloatField(min_value=0, required=False)
    wall_duration_ms = serializers.FloatField(min_value=0, required=False)
    replays = serializers.IntegerField(min_value=0, required=False)
    seconds = serializers.FloatField(min_value=0, required=False)
    repeats = serializers.IntegerField(min_value=1, required=False)
    slow_motion = serializers.FloatField(min_value=1, required=False)
    # The natural-speed schedule as played (studies.core.playback): the motion's own rate, the
    # rate on screen (fps / slow motion), whole showings of the clip and the still pause
    # between them, and when each showing began (ms after the first frame).
    motion_fps = serializers.FloatField(min_value=0, required=False)
    effective_fps = serializers.FloatField(min_value=0, required=False)
    clip_seconds = serializers.FloatField(min_value=0, required=False)
    showings = serializers.IntegerField(min_value=1, required=False)
    pause_seconds = serializers.FloatField(min_value=0, required=False)
    showing_starts_ms = serializers.ListField(child=serializers.FloatField(min_value=0), max_length=1000,
                                              required=False)


class AnswerSerializer(serializers.Serializer):
    """An answer to one trial; the choice must be one of that trial's options."""

    trial = serializers.CharField(max_length=32)
    answer = serializers.CharField(max_length=20)
    response_time_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000)
    playback = PlaybackLogSerializer(required=False, default=dict)

    def validate_answer(self, value):
        trial = self.context.get("trial")
        if trial is not None and value not in trial.option_values():
            raise serializers.ValidationError(
                f"Invalid choice {value!r}; choose one of: {', '.join(trial.option_values())}.")
        return value


class OptionSerializer(serializers.Serializer):
    value = serializers.CharField()
    text = serializers.CharField()


# ---- output: trials and motions ---------------------------------------------------------

class EncodedJSON:
    """A JSON text placed verbatim into a `views.json_response` body (never decoded and
    encoded again)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class EncodedMotionSerializer(serializers.Serializer):
    """A motion as `studies.core.payloads.encode_motion` encodes it (decoding: that module)."""

    format = serializers.ChoiceField(choices=[MOTION_FORMAT])
    shape = serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4,
                                  help_text="(persons, frames, joints, 3)")
    fps = serializers.FloatField()
    offset = serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3,
                                   help_text="Per axis: position = offset + q * scale")
    scale = serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3)
    data = serializers.CharField(help_text="base64 of the deflated int16 time differences")


@extend_schema_field(EncodedMotionSerializer)
class EncodedMotionField(serializers.Field):
    """The one output field whose value the serializer does not build: an `EncodedJSON`,
    the motion's JSON text as the cache holds it, passes through untouched so that
    `views.json_response` splices the bytes in. A motion is some 30 KB of base64 that
    would otherwise be decoded and encoded again on every trial served; its shape is
    still declared here (`EncodedMotionSerializer`), and the schema test validates the
    spliced motions against it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Encoded motion, as /api/motions/{key}/ serves it")
        super().__init__(**kwargs)

    def to_representation(self, value):
        if isinstance(value, EncodedJSON):
            return value
        return EncodedMotionSerializer(value).data


class MotionRefSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=MotionHandle.SIDES)
    key = serializers.CharField()
    url = serializers.CharField()
    motion = EncodedMotionField(required=False)  # left out with ?embed=0


class SkeletonSerializer(serializers.Serializer):
    num_joints = serializers.IntegerField()
    bones = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField(), min_length=2,
                                                              max_length=2),
                                  help_text="Joint index pairs")
    up = serializers.CharField(help_text="The vertical axis")


class PlaybackPlanSerializer(serializers.Serializer):
    """A trial's schedule (`studies.core.playback.plan`); lists run per motion, left first."""

    fps = serializers.ListField(child=serializers.FloatField())
    frames = serializers.ListField(child=serializers.IntegerField())
    effective_fps = serializers.ListField(child=serializers.FloatField(), help_text="fps / slow_motion")
    clip_seconds = serializers.FloatField()
    showings = serializers.IntegerField()
    pause_seconds = serializers.FloatField()
    slow_motion = serializers.FloatField()
    total_seconds = serializers.FloatField()
    seconds = serializers.FloatField(help_text="The study's playback_seconds")
    repeats = serializers.IntegerField()


class TrialSerializer(serializers.Serializer):
    trial = serializers.CharField()
    position = serializers.IntegerField()
    total = serializers.IntegerField()
    is_practice = serializers.BooleanField()
    prompt = serializers.CharField()
    options = OptionSerializer(many=True)
    options_after_playback = serializers.BooleanField(help_text="Show the options only once playback has ended")
    motions = MotionRefSerializer(many=True)
    skeleton = SkeletonSerializer()
    playback = PlaybackPlanSerializer()


class NextTrialSerializer(serializers.Serializer):
    done = serializers.BooleanField()
    trial = TrialSerializer(required=False, help_text="While trials remain")
    complete_url = serializers.CharField(required=False, help_text="Once every trial is answered")


# ---- output: answers and participations -------------------------------------------------

class FeedbackSerializer(serializers.Serializer):
    correct = serializers.BooleanField(allow_null=True)
    expected = serializers.CharField(allow_null=True)


class AnswerResultSerializer(serializers.Serializer):
    trial = serializers.CharField()
    answer = serializers.CharField(help_text="The stored answer (the first one, on a repeat)")
    duplicate = serializers.BooleanField()
    feedback = FeedbackSerializer(required=False, help_text="Practice trials only")
    remaining = serializers.IntegerField()


class AnswerConflictSerializer(AnswerResultSerializer):
    detail = serializers.CharField()


class ParticipationSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.ChoiceField(choices=Participant.STATUS_CHOICES)
    is_test = serializers.BooleanField()
    answered = serializers.IntegerField()
    total = serializers.IntegerField()
    next_url = serializers.CharField()


class SeriesNextSerializer(serializers.Serializer):
    token = serializers.CharField()
    page_url = serializers.CharField()
    part = serializers.IntegerField()


class SeriesProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=SeriesParticipant.STATUS_CHOICES)
    part = serializers.IntegerField(help_text="1-based position of the current study")
    parts = serializers.IntegerField()
    next = SeriesNextSerializer(required=False, help_text="The next study to take, while the series goes on")


class CompletionSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=list(CODED_OUTCOMES))
    completion_code = serializers.CharField(allow_blank=True, help_text="Blank while a series goes on")
    redirect_url = serializers.CharField(allow_blank=True)
    debrief_text = serializers.CharField(allow_blank=True)
    series = SeriesProgressSerializer(required=False)


class CompletionRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    remaining = serializers.IntegerField(required=False, help_text="Trials still unanswered, when that is why")


# ---- output: before consent --------------------------------------------------------------

class QuestionSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    choices = OptionSerializer(many=True)
    required = serializers.BooleanField()


class ConsentPublicSerializer(serializers.Serializer):
    """What anyone may read before consenting, to a study or to a series."""

    slug = serializers.CharField()
    name = serializers.CharField()
    consent_text = serializers.CharField()
    consent_version = serializers.CharField()
    questionnaire = QuestionSerializer(many=True)
    start_url = serializers.CharField()


class PlaybackSettingsSerializer(serializers.Serializer):
    """The study-wide settings (each trial's schedule is its `PlaybackPlanSerializer`)."""

    seconds = serializers.FloatField()
    repeats = serializers.IntegerField()
    slow_motion = serializers.FloatField()
    pause_seconds = serializers.FloatField()


class StudyPublicSerializer(ConsentPublicSerializer):
    status = serializers.ChoiceField(choices=Study.STATUS_CHOICES)
    instructions = serializers.CharField(allow_blank=True)
    trials = serializers.IntegerField()
    practice_trials = serializers.IntegerField()
    playback = PlaybackSettingsSerializer()


class SeriesPublicSerializer(ConsentPublicSerializer):
    parts = serializers.IntegerField()


class SeriesParticipationSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.ChoiceField(choices=SeriesParticipant.STATUS_CHOICES)
    part = serializers.IntegerField()
    parts = serializers.IntegerField()
    next = SeriesNextSerializer(required=False)
    completion_code = serializers.CharField(required=False, allow_blank=True, help_text="Once the series has ended")
    redirect_url = serializers.CharField(required=False, allow_blank=True)


# ---- output: errors ----------------------------------------------------------------------

class ErrorSerializer(serializers.Serializer):
    """`{"detail": why}`: what the views' own refusals send (a 409), and the shape DRF's
    exception handler gives the errors it renders (403, 404, 429 and the 400 of a body
    that is not JSON), so one component documents both."""

    detail = serializers.CharField()
