"""The action recognizers the SMART paper attacks, as plain `nn.Module`s.

Every class takes the dataset's skeleton and has the constructor

    Cls(skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3)

and `forward(x) -> logits` with x of shape (N, 3, T, V, M), differentiable end to end
with respect to x. `width=None` is the published configuration; a smaller width
(base channels) makes a model that trains on a CPU.

Each class also declares its `CPU_PRESET`, beside the model it configures: the reduced
width that trains it on a 2-core CPU within ten minutes and reaches the accuracies
reported by experiments/gtu_accuracy.py on GTU3DActions (one person), with the training
settings it was tuned with. Keys are constructor keywords (`width`, `num_frames`, which
also sets the clip length the data is resampled to) and `train()` keywords
(`attacks.core.training.loop.split_preset` separates them). CPU seconds per epoch (355
clips, one thread) were measured before choosing widths.

A class may also declare `COMPILE_GAIN`: how much `torch.compile` measured on top of bf16
for one attack iteration at the published width (README, *Attack engine speed*). Attack
runs compile by default only where that gain was measured and pays (`compile_gain`,
`attacks.core.methods.numerics.Numerics.for_run`).
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


def cpu_preset(arch: str) -> dict:
    """A copy of the CPU preset `arch`'s class declares."""
    return dict(recognizer_class(arch).CPU_PRESET)


def cpu_presets() -> dict[str, dict]:
    """Every architecture's CPU preset, in registry order."""
    return {arch: cpu_preset(arch) for arch in ARCHITECTURES}


def compile_gain(arch: str) -> float | None:
    """The measured speed-up of compiling `arch` under bf16, or None where never measured."""
    return getattr(recognizer_class(arch), "COMPILE_GAIN", None)
