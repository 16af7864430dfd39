"""Long work shows a bar on a terminal and a log line per step elsewhere (never a bar's
redraws in a log file): `attacks.core.progress`, and the commands that use it."""
import logging

import pytest
import torch
from django.core.management import call_command

from attacks.core.progress import LoggedSteps, note, steps


def progress_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "attacks.progress"]


def test_off_a_terminal_every_step_is_one_log_line(caplog, capsys):
    caplog.set_level(logging.INFO, logger="attacks.progress")
    bar = steps(range(4), "smart/ab", "batch", terminal=False)
    assert isinstance(bar, LoggedSteps)
    for i in bar:
        bar.set_postfix(done=i)
    lines = progress_lines(caplog)
    assert len(lines) == 4
    assert lines[0].startswith("smart/ab: batch 1/4 (") and lines[-1].startswith("smart/ab: batch 4/4 (")
    assert lines[-1].endswith("done=3") and "s/batch" in lines[-1]
    assert "\r" not in capsys.readouterr().err


def test_a_minimum_interval_keeps_only_the_last_line_of_a_fast_loop(caplog):
    caplog.set_level(logging.INFO, logger="attacks.progress")
    assert list(steps(range(50), "reading ntu", "file", terminal=False, min_interval=3600)) == list(range(50))
    assert [line.split(" (")[0] for line in progress_lines(caplog)] == ["reading ntu: file 50/50"]


def test_inner_loops_are_silent_off_a_terminal_and_disabled_progress_is_silent(caplog, capsys):
    caplog.set_level(logging.INFO, logger="attacks.progress")
    assert list(steps(range(3), "epoch 1", "batch", terminal=False, log_steps=False)) == [0, 1, 2]
    assert list(steps(range(3), "smart/ab", "batch", terminal=False, enabled=False)) == [0, 1, 2]
    assert list(steps(range(3), "smart/ab", "batch", terminal=True, enabled=False)) == [0, 1, 2]
    assert progress_lines(caplog) == [] and capsys.readouterr().err == ""


def test_on_a_terminal_it_is_a_bar_and_no_log_line(caplog, capsys):
    caplog.set_level(logging.INFO, logger="attacks.progress")
    assert list(steps(range(3), "smart/ab", "batch", terminal=True)) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "smart/ab" in err and "3/3" in err
    note("epoch 1/1: done", terminal=True)
    assert "epoch 1/1: done" in capsys.readouterr().out
    assert progress_lines(caplog) == []


def test_without_logging_configured_lines_go_to_stderr(monkeypatch, capsys):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger("attacks.progress"), "propagate", True)
    list(steps(range(2), "reading bvh", "file", terminal=False))
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err] == ["reading bvh: file 1/2", "reading bvh: file 2/2"]


@pytest.mark.django_db
def test_import_and_training_commands_log_a_line_per_file_and_epoch_not_per_redraw(caplog, capsys, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    caplog.set_level(logging.INFO, logger="attacks.progress")
    call_command("import_dataset", "synthetic", "classes=3,clips=6,frames=20,seed=0", name="progress-syn")
    call_command("train_recognizer", dataset="progress-syn", arch="stgcn", name="progress-tiny", width=4, epochs=3,
                 frames=16, batch_size=4, seed=0)
    lines = progress_lines(caplog)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert any(line.startswith("reading synthetic: file ") for line in lines)
    assert len(lines) <= 3 + 3  # the epochs, and at most one reading line per synthetic file (3 classes)
    assert "\r" not in capsys.readouterr().err  # pytest's captured stderr is not a terminal: no bar


class _Linear(torch.nn.Module):
    """A recognizer small enough for a progress test: logits linear in the motion."""

    def __init__(self, t, v, classes=3):
        super().__init__()
        self.fc = torch.nn.Linear(3 * t * v * 1, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_an_attack_over_batches_logs_a_line_per_batch_with_the_fooled_count(caplog):
    from attacks.core.methods import attack_in_batches
    from attacks.core.skeletons import get_skeleton
    caplog.set_level(logging.INFO, logger="attacks.progress")
    skeleton = get_skeleton("ntu25")
    torch.manual_seed(0)
    model = _Linear(8, skeleton.num_joints)
    motions = torch.randn(10, 1, 8, skeleton.num_joints, 3) * 0.1
    labels = model(motions.permute(0, 4, 2, 3, 1)).argmax(1)
    result = attack_in_batches(model, motions, labels, skeleton, batch_size=4, iterations=3, show_progress=True)
    lines = progress_lines(caplog)
    assert [line.split(" (")[0] for line in lines] == ["smart/ab: batch 1/3", "smart/ab: batch 2/3", "smart/ab: batch 3/3"]
    assert lines[-1].endswith(f"fooled={int(result.success.sum())}/10")
