"""The method registry: a new method is one declaration, and a run prepares exactly once."""
from dataclasses import dataclass

import pytest
import torch

from attacks.core import methods
from attacks.core.methods import METHODS, REGISTRY, CIASAConfig, Method, attack, attack_in_batches, method_config
from attacks.core.methods.engine import AttackMethod
from attacks.core.skeletons import get_skeleton

from tests.test_methods import LinearModel, random_ntu

NTU = get_skeleton("ntu25")


# ---- a toy method, declared the way smart.py, iaa.py and ciasa.py declare theirs ----------------
@dataclass
class NoiseConfig:
    scale: float = 0.01  # metres of uniform noise per coordinate and step
    seed: int = 0


class NoiseMethod(AttackMethod):
    """Random search: ignores the gradient and adds seeded noise, kept within ±scale of the
    original, until the sample is fooled."""

    def __init__(self, config, originals, skeleton, mask, fps=None):
        super().__init__(config, originals, skeleton, mask, fps=fps)
        self.generator = torch.Generator().manual_seed(config.seed)

    def loss(self, x, idx, lc):
        return lc

    def step(self, x, grad, idx, iteration):
        noise = (torch.rand(x.shape, generator=self.generator) * 2 - 1) * self.config.scale
        q0 = self.originals[idx]
        return torch.clamp(x + noise.to(x), q0 - self.config.scale, q0 + self.config.scale)


NOISE = Method(name="noise", config=NoiseConfig, implementation=NoiseMethod, budget="scale")


@pytest.fixture
def noise_registered():
    REGISTRY.register(NOISE)
    try:
        yield NOISE
    finally:
        REGISTRY.unregister("noise")


def test_a_registered_toy_method_runs_through_method_config_and_attack(noise_registered):
    assert "noise" in METHODS and METHODS[-1] == "noise"
    assert method_config("noise", scale=0.02) == NoiseConfig(scale=0.02)
    with pytest.raises(TypeError):
        method_config("noise", lr=0.1)
    q = random_ntu(4, frames=8, seed=3)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    r = attack(model, q, y, NTU, method="noise", scale=0.02, iterations=5, early_stop=False)
    moved = (r.adversarial - q).abs()
    assert 0 < moved.max().item() <= 0.02 + 1e-6
    # A config object alone picks its method, and the same seed gives the same noise.
    again = attack(model, q, y, NTU, config=NoiseConfig(scale=0.02), iterations=5, early_stop=False)
    assert torch.equal(r.adversarial, again.adversarial)
    batched = attack_in_batches(model, q, y, NTU, batch_size=2, method="noise", scale=0.02, iterations=5,
                                early_stop=False, show_progress=False)
    assert batched.adversarial.shape == q.shape and (batched.adversarial - q).abs().max().item() <= 0.02 + 1e-6


def test_unregistering_removes_every_name_and_names_are_unique(noise_registered):
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register(Method(name="other", config=NoiseConfig, implementation=NoiseMethod,
                                 variants={"noise": {}}))
    with pytest.raises(ValueError, match="needs_preparation"):  # a hook must say when a config is prepared
        Method(name="prepared-noise", config=NoiseConfig, implementation=NoiseMethod,
               prepare=lambda config, *args, **kwargs: (config, {}))
    REGISTRY.unregister("noise")
    try:
        assert "noise" not in METHODS
        with pytest.raises(ValueError, match="unknown attack method 'noise'"):
            method_config("noise")
    finally:
        REGISTRY.register(NOISE)  # the fixture unregisters it again


def test_smart_ablations_are_names_of_the_smart_module():
    assert tuple(METHODS) == ("smart", "l2", "l2-acc", "l2-bone", "iaa", "ciasa")
    smart = REGISTRY["smart"]
    assert all(REGISTRY[name] is smart for name in ("l2", "l2-acc", "l2-bone"))
    assert method_config("l2-bone").perceptual == "l2-bone" and method_config("l2-bone").preset == "authors"
    assert REGISTRY.for_config(method_config("l2")) is smart
    assert REGISTRY.for_config(CIASAConfig()) is REGISTRY["ciasa"]
    with pytest.raises(TypeError, match="not an attack config"):
        REGISTRY.for_config(object())


# ---- the prepare hook runs once per run ----------------------------------------------------------
@pytest.fixture
def counted_ciasa_prepare(monkeypatch):
    calls = []
    real = REGISTRY["ciasa"].prepare

    def counting(config, *args, **kwargs):
        calls.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(REGISTRY["ciasa"], "prepare", counting)
    return calls


def test_ciasa_is_prepared_once_per_run_in_process(counted_ciasa_prepare):
    q = random_ntu(6, frames=6, seed=12)
    train = random_ntu(6, frames=6, seed=14)
    model = LinearModel(6)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    y_train = model(train.permute(0, 4, 2, 3, 1)).argmax(1)
    options = dict(method="ciasa", discriminator_steps=3, discriminator_rounds=2, discriminator_attack_steps=2,
                   iterations=3, early_stop=False, seed=1, train_motions=train, train_labels=y_train)
    batched = attack_in_batches(model, q, y, NTU, batch_size=2, show_progress=False, **options)
    assert len(counted_ciasa_prepare) == 1  # three batches, one discriminator
    counted_ciasa_prepare.clear()
    whole = attack(model, q, y, NTU, **options)
    assert len(counted_ciasa_prepare) == 1
    # The attack's own CIASA steps inside the discriminator's training do not prepare again,
    # and the batches shared the one prepared config: batched equals all-at-once.
    assert torch.allclose(batched.adversarial, whole.adversarial, atol=1e-6)
    # A prepared config has nothing left to learn: attacking with it prepares nothing.
    counted_ciasa_prepare.clear()
    prepared = methods.prepare(method_config("ciasa", discriminator_steps=3, discriminator_rounds=2,
                                             discriminator_attack_steps=2), model, NTU, y_train,
                               train_motions=train, train_labels=y_train, seed=1).config
    attack(model, q, y, NTU, config=prepared, iterations=2)
    assert len(counted_ciasa_prepare) == 1


def test_sa_targets_are_drawn_once_over_the_whole_set():
    q = random_ntu(5, frames=8, seed=13)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    batched = attack_in_batches(model, q, y, NTU, batch_size=2, strategy="sa", fps=30, iterations=2, seed=3,
                                show_progress=False)
    assert torch.equal(batched.targets, methods.draw_targets(y, 6, seed=3))
    assert torch.equal(batched.targets, methods.random_targets(y, 6, seed=3))
    assert torch.equal(methods.draw_targets(y, 6, seed=3, target=4), torch.full((5,), 4))
