"""Validation of what participants send and the shape of what they receive.

Output serializers are built field by field from what a participant may see: no sample
ids, methods, variants, correct answers or design facts ever enter them.
"""
from __future__ import annotations

from rest_framework import serializers

from studies.core.participation_config import check_questionnaire_answers


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


class MotionRefSerializer(serializers.Serializer):
    side = serializers.CharField()
    key = serializers.CharField()
    url = serializers.CharField()
    motion = serializers.DictField(required=False, help_text="Encoded motion (see /api/motions/{key}/)")


class TrialSerializer(serializers.Serializer):
    trial = serializers.CharField()
    position = serializers.IntegerField()
    total = serializers.IntegerField()
    is_practice = serializers.BooleanField()
    prompt = serializers.CharField()
    options = OptionSerializer(many=True)
    options_after_playback = serializers.BooleanField(help_text="Show the options only once playback has ended")
    motions = MotionRefSerializer(many=True)
    skeleton = serializers.DictField()
    playback = serializers.DictField(help_text="Schedule: fps, frames, clip_seconds, showings, pause_seconds, "
                                               "slow_motion, total_seconds")


class NextTrialSerializer(serializers.Serializer):
    done = serializers.BooleanField()
    trial = TrialSerializer(required=False)
    complete_url = serializers.CharField(required=False)


class AnswerResultSerializer(serializers.Serializer):
    trial = serializers.CharField()
    answer = serializers.CharField()
    duplicate = serializers.BooleanField()
    feedback = serializers.DictField(required=False)
    remaining = serializers.IntegerField()


class ParticipationSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.CharField()
    is_test = serializers.BooleanField()
    answered = serializers.IntegerField()
    total = serializers.IntegerField()
    next_url = serializers.CharField()


class SeriesNextSerializer(serializers.Serializer):
    token = serializers.CharField()
    page_url = serializers.CharField()
    part = serializers.IntegerField()


class SeriesProgressSerializer(serializers.Serializer):
    status = serializers.CharField()
    part = serializers.IntegerField(help_text="1-based position of the current study")
    parts = serializers.IntegerField()
    next = SeriesNextSerializer(required=False, help_text="The next study to take, while the series goes on")


class CompletionSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["completed", "screened_out", "timed_out"])
    completion_code = serializers.CharField(allow_blank=True, help_text="Blank while a series goes on")
    redirect_url = serializers.CharField(allow_blank=True)
    debrief_text = serializers.CharField(allow_blank=True)
    series = SeriesProgressSerializer(required=False)


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


class StudyPublicSerializer(ConsentPublicSerializer):
    status = serializers.CharField()
    instructions = serializers.CharField(allow_blank=True)
    trials = serializers.IntegerField()
    practice_trials = serializers.IntegerField()
    playback = serializers.DictField()


class SeriesPublicSerializer(ConsentPublicSerializer):
    parts = serializers.IntegerField()


class SeriesParticipationSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.CharField()
    part = serializers.IntegerField()
    parts = serializers.IntegerField()
    next = SeriesNextSerializer(required=False)
    completion_code = serializers.CharField(required=False, allow_blank=True)
    redirect_url = serializers.CharField(required=False, allow_blank=True)
