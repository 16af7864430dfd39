"""The action recognizers the SMART paper attacks, as plain `nn.Module`s.

Every class takes the dataset's skeleton and has the constructor

    Cls(skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3)

and `forward(x) -> logits` with x of shape (N, 3, T, V, M), differentiable end to end
with respect to x. `width=None` is the published configuration; a smaller width
(base channels) makes a model that trains on a CPU.
"""
from importlib import import_module

ARCHITECTURES = {
    "hrnn": "attacks.core.recognizers.hrnn:HRNN",
    "stgcn": "attacks.core.recognizers.stgcn:STGCN",
    "asgcn": "attacks.core.recognizers.stgcn:ASGCN",
    "dgnn": "attacks.core.recognizers.dgnn:DGNN",
    "agcn": "attacks.core.recognizers.stgcn:AGCN2s",
    "msg3d": "attacks.core.recognizers.msg3d:MSG3D",
    "sgn": "attacks.core.recognizers.sgn:SGN",
    "ctrgcn": "attacks.core.recognizers.stgcn:CTRGCN",
}


def recognizer_class(arch: str):
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    module, name = ARCHITECTURES[arch].split(":")
    return getattr(import_module(module), name)


def build_recognizer(arch: str, skeleton, num_classes: int, **kwargs):
    return recognizer_class(arch)(skeleton, num_classes, **kwargs)
