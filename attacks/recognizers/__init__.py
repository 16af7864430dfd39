"""The action recognizers the SMART paper attacks, as plain `nn.Module`s.

Every class takes the dataset's skeleton and has the constructor

    Cls(skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3)

and `forward(x) -> logits` with x of shape (N, 3, T, V, M), differentiable end to end
with respect to x. `width=None` is the published configuration; a smaller width
(base channels) makes a model that trains on a CPU.
"""
from importlib import import_module

ARCHITECTURES = {
    "hrnn": "attacks.recognizers.hrnn:HRNN",
    "stgcn": "attacks.recognizers.stgcn:STGCN",
    "asgcn": "attacks.recognizers.stgcn:ASGCN",
    "dgnn": "attacks.recognizers.dgnn:DGNN",
    "agcn": "attacks.recognizers.stgcn:AGCN2s",
    "msg3d": "attacks.recognizers.msg3d:MSG3D",
    "sgn": "attacks.recognizers.sgn:SGN",
    "ctrgcn": "attacks.recognizers.stgcn:CTRGCN",
}


def recognizer_class(arch: str):
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    module, name = ARCHITECTURES[arch].split(":")
    return getattr(import_module(module), name)


def build_recognizer(arch: str, skeleton, num_classes: int, **kwargs):
    return recognizer_class(arch)(skeleton, num_classes, **kwargs)
