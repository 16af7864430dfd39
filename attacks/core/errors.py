"""The attacks app's one error hierarchy.

Every failure the app reports to a person (a file that cannot be read, an inconsistent
skeleton, an import, a training or a model load that cannot go ahead) is an
`AttacksError` whose message already says what is wrong and where: the file and line,
the field, the record. A management command or an admin form therefore catches this
one base and prints the message as it is, without a traceback; anything else that
escapes is a bug and keeps its traceback.

Bad input (a file, a skeleton definition) is an `InputError`, which is also a
`ValueError`, so code that validates with `except ValueError` catches it as it always
did.
"""


class AttacksError(Exception):
    """A failure whose message is meant for the person who ran the command or filled the form."""


class InputError(AttacksError, ValueError):
    """The input itself is wrong (a file, a skeleton, an option); the message names where."""
