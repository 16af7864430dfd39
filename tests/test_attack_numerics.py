"""The attack engine's fast paths (bf16 autocast, torch.compile, channels-last) against the exact path.

What a user relies on: switching `Numerics` changes how fast an attack runs, not what
it finds. On a recognizer trained on real data (GTU3DActions), the fast path fools the
same clips, in about as many iterations, with about the same perceptual cost as the
float32 eager path; it never reports a success the float32 recognizer does not confirm;
and it leaves the caller's model as it was.
"""
import numpy as np
import pytest
import torch

from attacks.core.data import preprocessing
from attacks.core.methods import Numerics, attack
from attacks.core.methods.numerics import RecognizerRunner, bf16_supported
from attacks.core.methods.metrics import perceptual_metrics
from attacks.core.motion import to_model_input
from attacks.core.data.readers import gtu
from attacks.core.recognizers import build_recognizer, compile_gain
from attacks.core.recognizers.streams import bone_stream
from attacks.core.skeletons import get_skeleton
from attacks.core.data.splits import stratified_split
from attacks.core.training.loop import train
from tests.conftest import require_shared_datasets

NTU = get_skeleton("ntu25")
needs_bf16 = pytest.mark.skipif(not bf16_supported("cpu"), reason="this CPU has no native bf16")


# ---- options ----------------------------------------------------------------------------------
def test_options_are_checked():
    with pytest.raises(ValueError, match="precision"):
        Numerics(precision="fp16")
    with pytest.raises(ValueError, match="cuda_graphs needs compile"):
        Numerics(cuda_graphs=True)
    with pytest.raises(ValueError, match="cuda_graphs applies to CUDA"):
        Numerics(compile=True, cuda_graphs=True).check_device("cpu")
    with pytest.raises(ValueError, match="precision must be auto or one of fp32, bf16"):
        Numerics.resolve_precision("half")
    assert Numerics().exact and not Numerics(precision="bf16").exact and not Numerics(channels_last=True).exact


def test_defaults_follow_the_hardware_and_the_size_of_the_work(monkeypatch):
    import attacks.core.methods.numerics as numerics

    monkeypatch.setattr(numerics, "bf16_supported", lambda device="cpu": False)
    assert Numerics.fast("cpu").exact and Numerics.resolve_precision("auto") == "fp32"
    with pytest.raises(ValueError, match="bf16 is not supported natively"):
        Numerics(precision="bf16").check_device("cpu")
    monkeypatch.setattr(numerics, "bf16_supported", lambda device="cpu": True)
    assert Numerics.resolve_precision("auto") == "bf16" and Numerics.resolve_precision("fp32") == "fp32"
    many, few = numerics.COMPILE_MIN_CLIPS, numerics.COMPILE_MIN_CLIPS - 1
    pays = compile_gain("stgcn")
    assert Numerics.for_run("bf16", clips=many, compile_gain=pays).compile
    assert not Numerics.for_run("bf16", clips=few, compile_gain=pays).compile
    assert not Numerics.for_run("fp32", clips=many, compile_gain=pays).compile  # the exact path stays exact unless asked
    # compiled by default only where the measured gain repays a cold compile, never unmeasured
    assert not Numerics.for_run("bf16", clips=many, compile_gain=compile_gain("msg3d")).compile
    assert not Numerics.for_run("bf16", clips=many, compile_gain=compile_gain("agcn")).compile
    assert compile_gain("sgn") is None and not Numerics.for_run("bf16", clips=many).compile
    assert Numerics.for_run("bf16", clips=1, compile=True).compile  # asking always compiles
    assert Numerics.for_run("fp32", clips=1, compile=True) == Numerics(compile=True)
    assert Numerics.for_run("bf16", clips=1, channels_last=True).channels_last


def test_compiled_batches_are_padded_to_few_sizes_and_padding_changes_nothing(monkeypatch):
    """Padding rows are detached copies: the real rows' logits and gradients are those of
    the unpadded batch (checked without inductor: only the padding is under test here)."""
    import attacks.core.methods.numerics as numerics

    monkeypatch.setattr(numerics, "_prepared_module", lambda model, n: model)
    model = build_recognizer("stgcn", NTU, 5, num_persons=2, num_frames=8, width=4).eval()
    runner = RecognizerRunner(model, numerics=Numerics(compile=True), max_batch=20)
    assert [runner.bucket(k) for k in (1, 3, 8, 9, 16, 17, 20)] == [8, 8, 8, 16, 16, 20, 20]
    q = (torch.randn(3, 2, 8, 25, 3, generator=torch.Generator().manual_seed(0)) * 0.3).requires_grad_(True)
    padded_logits = runner(q)
    g_padded, = torch.autograd.grad(padded_logits.sum(), q)
    plain = model(to_model_input(q))
    g_plain, = torch.autograd.grad(plain.sum(), q)
    assert padded_logits.shape == (3, 5)
    torch.testing.assert_close(padded_logits, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_padded, g_plain, rtol=1e-5, atol=1e-7)


def test_bone_stream_compiles_without_a_graph_break():
    x = torch.randn(2, 3, 4, 25, 1)
    explanation = torch._dynamo.explain(lambda t: bone_stream(t, NTU))(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch.testing.assert_close(torch.compile(lambda t: bone_stream(t, NTU), backend="eager")(x), bone_stream(x, NTU))


def test_channels_last_leaves_the_callers_model_as_it_was():
    model = build_recognizer("stgcn", NTU, 4, num_persons=2, num_frames=8, width=4)
    model.train()
    q = torch.randn(2, 2, 8, 25, 3) * 0.3
    strides = {n: p.stride() for n, p in model.named_parameters()}
    r = attack(model, q, torch.tensor([0, 1]), NTU, iterations=2, early_stop=False, fps=30,
               numerics=Numerics(channels_last=True))
    assert r.adversarial.shape == q.shape
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert {n: p.stride() for n, p in model.named_parameters()} == strides


# ---- outcomes on a recognizer trained on real data ----------------------------------------------
@pytest.fixture(scope="module")
def gtu_recognizer():
    """A small ST-GCN trained on GTU3DActions (centred, facing +z, 32 frames) and the test
    clips it classifies correctly."""
    root = require_shared_datasets() / "gtu3dactions"
    clips = [c for f in gtu.list_files(root) for c in gtu.read_file(f, NTU)]
    motions = [preprocessing.normalise_for_recognition(c.motion, NTU) for c in clips]
    labels = np.array([c.meta["class_id"] - 1 for c in clips], dtype=np.int64)
    X = preprocessing.to_fixed_length(motions, 32, num_persons=1).astype(np.float32)
    split = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    torch.manual_seed(0)
    model = build_recognizer("stgcn", NTU, int(labels.max()) + 1, num_persons=1, num_frames=32, width=8)
    train(model, (X[split["train"]], labels[split["train"]]), (X[split["val"]], labels[split["val"]]), epochs=8,
          batch_size=16, lr=0.05, warmup_epochs=1, seed=0, progress=False)
    model.eval()
    test = split["test"]
    with torch.no_grad():
        pred = model(to_model_input(torch.as_tensor(X[test]))).argmax(1).numpy()
    keep = test[pred == labels[test]]
    assert len(keep) >= 40, f"the test recognizer gets only {len(keep)} test clips right"
    return model, torch.as_tensor(X[keep[:40]]), torch.as_tensor(labels[keep[:40]])


def _compare(model, q, y, numerics, iterations=100):
    kw = dict(iterations=iterations, fps=30.0)
    exact = attack(model, q, y, NTU, **kw)
    fast = attack(model, q, y, NTU, numerics=numerics, **kw)
    return exact, fast


def _metrics(q, result):
    m = perceptual_metrics(q.numpy(), result.adversarial.numpy(), NTU, fps=30.0)
    return {k: float(np.mean(v[result.success.numpy()])) for k, v in m.items()}


def _assert_same_outcomes(q, exact, fast):
    n = len(q)
    assert exact.success.sum() >= 0.6 * n, "the exact path itself should fool most clips at this budget"
    assert abs(int(exact.success.sum()) - int(fast.success.sum())) <= max(2, round(0.05 * n))
    both = exact.success & fast.success
    it_exact, it_fast = exact.iterations[both].double(), fast.iterations[both].double()
    assert abs(it_exact.median() - it_fast.median()) <= max(2.0, 0.1 * float(it_exact.median()))
    m_exact, m_fast = _metrics(q, exact), _metrics(q, fast)
    for key in ("mean_displacement", "bone_length_error", "acceleration_deviation"):
        assert m_fast[key] == pytest.approx(m_exact[key], rel=0.05), key
    # Labels before the attack are the float32 recognizer's, whatever path attacked.
    assert torch.equal(exact.labels_before, fast.labels_before)


def _assert_float32_confirms(model, fast, y, iterations):
    """Every success the fast path reports, and every sample it froze early, is one the
    float32 recognizer confirms on the returned motion."""
    with torch.no_grad():
        logits = model(to_model_input(fast.adversarial))
    truly = logits.argmax(1) != y
    assert torch.equal(fast.success, truly)
    frozen = fast.iterations < iterations
    assert bool(truly[frozen].all())
    torch.testing.assert_close(fast.probs_after, logits.softmax(1))


@needs_bf16
def test_bf16_fools_the_same_clips_as_float32(gtu_recognizer):
    model, q, y = gtu_recognizer
    exact, fast = _compare(model, q, y, Numerics(precision="bf16"))
    _assert_same_outcomes(q, exact, fast)
    _assert_float32_confirms(model, fast, y, 100)


@needs_bf16
def test_bf16_compiled_fools_the_same_clips_as_float32(gtu_recognizer):
    model, q, y = gtu_recognizer
    q, y = q[:24], y[:24]  # 24 samples: buckets 32 (cap 24), 16, 8 are all compiled on the way down
    exact, fast = _compare(model, q, y, Numerics(precision="bf16", compile=True, channels_last=True))
    _assert_same_outcomes(q, exact, fast)
    _assert_float32_confirms(model, fast, y, 100)


def test_exact_path_is_unchanged_by_the_runner(gtu_recognizer):
    """Numerics() is the engine's reference: the same bits as an explicit float32 Numerics."""
    model, q, y = gtu_recognizer
    a = attack(model, q[:8], y[:8], NTU, iterations=10, fps=30.0)
    b = attack(model, q[:8], y[:8], NTU, iterations=10, fps=30.0, numerics=Numerics(precision="fp32"))
    assert torch.equal(a.adversarial, b.adversarial) and torch.equal(a.iterations, b.iterations)
