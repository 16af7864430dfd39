"""File readers for skeletal-motion datasets.

Each format is a module with two functions:

    list_files(path) -> list[Path]            # the files an import will read, in order
    read_file(path, skeleton, **options) -> list[RawClip]

The import command iterates `list_files` under a progress bar and wraps the whole
import in one database transaction, so readers only parse and raise `ReaderError`.
"""
from importlib import import_module

from attacks.core.data.readers.base import RawClip, ReaderError  # noqa: F401

FORMATS = {
    "ntu": "attacks.core.data.readers.ntu",
    "bvh": "attacks.core.data.readers.bvh",
    "amc": "attacks.core.data.readers.amc",
    "gtu": "attacks.core.data.readers.gtu",
    "npz": "attacks.core.data.readers.npz",
    "synthetic": "attacks.core.data.readers.synthetic",
}

# The skeleton a format implies when the user names none.
DEFAULT_SKELETON = {"ntu": "ntu25", "gtu": "ntu25", "bvh": "cmu25", "amc": "cmu25", "synthetic": "ntu25"}


def get_reader(fmt: str):
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return import_module(FORMATS[fmt])
