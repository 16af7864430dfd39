"""Each app has one error hierarchy: every error it reports to a person derives from the
app's base (so a command or form catches one class), and bad input is also a ValueError."""
import pytest

from attacks.core.data.readers.base import ReaderError
from attacks.core.errors import AttacksError, InputError
from attacks.core.skeletons import SkeletonError
from studies.core.errors import StudyError, StudyInputError
from studies.core.participation_config import ParticipationConfigError, validate_participation
from studies.protocols import get_protocol
from studies.protocols.base import ConfigurationError


def test_every_reported_error_derives_from_its_apps_base():
    from attacks.services.generation import GenerationCancelled
    from attacks.services.importing import ImportFailed
    from attacks.services.recognition import RecognitionError
    from studies.assignment import ParticipationConflict, SeriesError
    for cls in (ReaderError, SkeletonError):
        assert issubclass(cls, InputError) and issubclass(cls, ValueError)
    for cls in (ImportFailed, RecognitionError, GenerationCancelled):
        assert issubclass(cls, AttacksError)
    for cls in (ConfigurationError, ParticipationConfigError):
        assert issubclass(cls, StudyInputError) and issubclass(cls, ValueError)
    for cls in (ParticipationConflict, SeriesError):
        assert issubclass(cls, StudyError)


def test_a_bad_study_configuration_is_caught_as_the_apps_error_and_names_the_key():
    with pytest.raises(StudyError, match="trials_per_participant"):
        get_protocol("naturalness").validate({"trials_per_participant": "many"})
    with pytest.raises(StudyInputError, match="completion_code"):
        validate_participation({"completion_code": 5})
