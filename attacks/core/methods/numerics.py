"""How an attack runs the recognizer: precision, compilation, memory layout.

An attack spends nearly all its time in the recognizer's forward pass and the backward
pass to its input; these options change only how that is computed. The attack's own
state stays float32 whatever they say: the perturbed motion, the protocol view that
normalises it, the perceptual loss, the gradients the method mixes and the optimiser's
moments. Logits come back as float32.

- ``precision="bf16"``: the recognizer runs under bfloat16 autocast (convolutions and
  matrix products in bf16 on CPUs with AVX512-BF16/AMX and on CUDA GPUs that have it).
- ``compile=True``: the recognizer is compiled with `torch.compile` (inductor; forward and
  backward). Inputs are padded to a few fixed batch sizes (powers of two from
  `min_bucket` up to the attack's batch) so that samples finishing one by one do not
  recompile it at every new size; padded rows are copies of a real row, detached, so
  they add nothing to any gradient and the recognizer is in eval mode (no batch
  statistics), so they change no other row's logits.
- ``channels_last=True``: a copy of the recognizer with its 4-D weights in channels-last
  layout (the original is left as it was).
- ``cuda_graphs=True`` (CUDA only, with compile): inductor's "reduce-overhead" mode, which
  replays the fixed-shape step as a CUDA graph.

`Numerics()` is the exact float32 eager path, the one every number this project
published before these options existed was computed with. A generation run stores its
precision (part of its identity, as the method's options are); compilation and layout
are execution options, like the device and the batch size (`Numerics.for_run`).
"""
from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch

from attacks.core.motion import to_model_input

PRECISIONS = ("fp32", "bf16")
COMPILE_MIN_CLIPS = 1000  # clips in one attack call from which compiling pays (README, *Attack engine speed*)
COMPILE_MIN_GAIN = 1.2  # a measured bf16 compile speed-up below this does not repay a cold compile
CHANNELS_LAST = False  # measured: no gain on top of bf16 + compile (README)


@dataclass(frozen=True)
class Numerics:
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    min_bucket: int = 8  # smallest padded batch under compile

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("compile", "channels_last", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.cuda_graphs and not self.compile:
            raise ValueError("cuda_graphs needs compile=true (they are inductor's reduce-overhead mode)")
        if int(self.min_bucket) < 1:
            raise ValueError(f"min_bucket must be positive, got {self.min_bucket!r}")

    @property
    def exact(self) -> bool:
        """Whether this is the float32 eager path (bit-for-bit the engine's reference)."""
        return self.precision == "fp32" and not (self.compile or self.channels_last)

    @classmethod
    def fast(cls, device="cpu") -> "Numerics":
        """The default precision for `device`: bf16 where the hardware computes it natively
        (where it was measured, README), else the exact path."""
        return cls(precision="bf16") if bf16_supported(device) else cls()

    @classmethod
    def for_run(cls, precision: str, *, compile: bool | None = None,
                channels_last: bool | None = None, clips: int | None = None,
                compile_gain: float | None = None) -> "Numerics":
        """How one run executes: its precision (part of the run's identity) and the execution
        options (like the device and the batch size, not part of it).

        compile None: compiled when the precision is bf16, the work is long enough to pay
        for compilation (`clips` ≥ COMPILE_MIN_CLIPS) and the recognizer's measured bf16
        compile speed-up (`compile_gain`, its class's COMPILE_GAIN) is at least
        COMPILE_MIN_GAIN: ST-GCN's 1.54× pays for inductor's first compile (48 s on two
        cores), MS-G3D's 1.03× does not (243 s), and an architecture never measured is not
        compiled unless asked (README, *Attack engine speed*). channels_last None: CHANNELS_LAST."""
        if compile is None:
            compile = (precision == "bf16" and clips is not None and clips >= COMPILE_MIN_CLIPS
                       and compile_gain is not None and compile_gain >= COMPILE_MIN_GAIN)
        return cls(precision=precision, compile=bool(compile),
                   channels_last=CHANNELS_LAST if channels_last is None else bool(channels_last))

    @staticmethod
    def resolve_precision(precision: str, device="cpu") -> str:
        """A command line's --precision: "auto" is `fast(device)`'s."""
        if precision == "auto":
            return Numerics.fast(device).precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
        return precision

    def check_device(self, device) -> None:
        device = torch.device(device)
        if self.cuda_graphs and device.type != "cuda":
            raise ValueError("cuda_graphs applies to CUDA devices only")
        if self.precision == "bf16" and not bf16_supported(device):
            raise ValueError(f"precision bf16 is not supported natively on {device} "
                             "(CPUs need AVX512-BF16 or AMX; use precision fp32)")


def bf16_supported(device="cpu") -> bool:
    """Whether `device` computes bfloat16 natively (not emulated, which is slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class RecognizerRunner:
    """logits = runner(motions): `preprocess`, the model input layout and the recognizer,
    under `numerics`. Motions (K, M, T, V, 3) float32; logits (K, C) float32."""

    def __init__(self, model: torch.nn.Module, preprocess=None, numerics: Numerics | None = None,
                 max_batch: int | None = None):
        self.numerics = numerics or Numerics()
        self.preprocess = preprocess
        self.max_batch = max_batch
        self.module = _prepared_module(model, self.numerics)

    def __call__(self, motions: torch.Tensor) -> torch.Tensor:
        k = motions.shape[0]
        padded = self._pad(motions)
        x = padded if self.preprocess is None else self.preprocess(padded)
        x = to_model_input(x)
        n = self.numerics
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=n.precision == "bf16"):
            logits = self.module(x)
        return logits[:k].float()

    def bucket(self, k: int) -> int:
        """The padded batch size for k rows (k itself unless compiled)."""
        if not self.numerics.compile:
            return k
        size = max(int(self.numerics.min_bucket), 1 << max(0, (k - 1).bit_length()))
        return max(k, min(size, self.max_batch or size))

    def _pad(self, motions):
        k = motions.shape[0]
        size = self.bucket(k)
        if size == k:
            return motions
        filler = motions[:1].detach().expand(size - k, *motions.shape[1:])
        return torch.cat([motions, filler])


# model -> {numerics key: prepared module}; compiled modules are reused across attacks
# (batches of one run, the runs of one process) and dropped with their model.
_PREPARED: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def _prepared_module(model, numerics: Numerics):
    if not (numerics.compile or numerics.channels_last):
        return model
    key = (numerics.compile, numerics.channels_last, numerics.cuda_graphs)
    cache = _PREPARED.setdefault(model, {})
    if key not in cache:
        module = model
        if numerics.channels_last:
            # A copy, frozen like the attack freezes the model: the caller's model keeps its layout.
            module = copy.deepcopy(model).to(memory_format=torch.channels_last).eval().requires_grad_(False)
        if numerics.compile:
            mode = "reduce-overhead" if numerics.cuda_graphs else None
            module = torch.compile(module, dynamic=False, mode=mode)
        cache[key] = module
    return cache[key]
