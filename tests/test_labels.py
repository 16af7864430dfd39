"""A class is named the same way everywhere: its dataset's name for it, else one fallback
for researchers (the index) and one for participants ("class 3")."""
from attacks.core.data.labels import PARTICIPANT_UNNAMED, label_name
from studies.protocols.base import SampleInfo, class_name


def test_named_classes_keep_their_names_and_unnamed_ones_one_spelling_per_audience():
    names = ("wave", "kick")
    assert label_name(names, 1) == "kick" and label_name(names, 1, PARTICIPANT_UNNAMED) == "kick"
    assert label_name(names, 5) == "5" and label_name(None, 0) == "0" and label_name(names, -1) == "-1"
    assert label_name(names, 5, PARTICIPANT_UNNAMED) == "class 5"
    sample = SampleInfo(id=1, clip=1, recognizer=1, strategy="ab", method="smart", dataset="d", label=0,
                        label_after=7, success=True, class_names=names)
    assert class_name(sample, 0) == "wave" and class_name(sample, 7) == "class 7"  # what a participant reads
