"""The trainer: runs on CPU, learns, resumes exactly, and keeps the official state-dict format."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tinysam_mobile.checkpoint import load_tinysam, read_state_dict
from tinysam_mobile.training import prompts
from tinysam_mobile.training.losses import focal_loss, prompt_losses
from tinysam_mobile.training.train import (EVAL_SEED_START, TrainConfig, load_state, make_batch, new_state,
                                           step_rng, train, train_step)

TSV = Path(__file__).parent / "data" / "tinysam_state_dict.tsv"
TINY = TrainConfig(img_size=128, steps=4, batch_size=1, prompts_per_image=2, refine_rounds=1, warmup_steps=1)


def official_shapes() -> dict[str, str]:
    rows = [line.split("\t") for line in TSV.read_text().splitlines()[1:]]
    return {key: shape for key, shape, _ in rows}


def test_smoke_command_trains_and_writes_official_format_weights(tmp_path):
    from tinysam_mobile.cli import app

    result = CliRunner().invoke(app, ["train", "--smoke", "--device", "cpu", "--threads", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "step 3 loss=" in (tmp_path / "log.txt").read_text()
    weights = read_state_dict(tmp_path / "weights.safetensors")
    assert {k: str(tuple(v.shape)) for k, v in weights.items()} == official_shapes()
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    state = load_state(tmp_path / "state.pt")
    assert state.step == 3 and state.config.img_size == 256
    model = load_tinysam(tmp_path / "weights.safetensors")  # strict load at 1024
    trained = state.model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key].half().to(value.dtype)), key


def test_loss_decreases_on_a_repeated_batch():
    torch.manual_seed(0)
    config = replace(TINY, steps=10, prompts_per_image=3, lr=1e-3, refine_rounds=0)
    state = new_state(config)
    batch = make_batch(config, 0)
    losses = [train_step(state.model, state.optimizer, state.scheduler, batch, step_rng(config, 0), config)["loss"]
              for _ in range(config.steps)]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


@pytest.fixture
def one_thread():
    # Multi-threaded CPU reductions differ run to run in the last bits; one thread is bit-reproducible.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resume_reproduces_the_uninterrupted_run(tmp_path, one_thread):
    straight = train(new_state(TINY), tmp_path / "a", save_every=100)
    sliced = train(new_state(TINY), tmp_path / "b", save_every=100, stop_at=2)
    assert sliced.step == 2
    resumed = train(load_state(tmp_path / "b" / "state.pt"), tmp_path / "b", save_every=100)
    assert resumed.step == straight.step == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.optimizer.state_dict()["state"].keys() == straight.optimizer.state_dict()["state"].keys()
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_training_scenes_never_reach_the_held_out_range():
    assert TrainConfig().steps * TrainConfig().batch_size < EVAL_SEED_START
    try:
        TrainConfig(steps=EVAL_SEED_START, batch_size=2)
    except ValueError:
        pass
    else:
        raise AssertionError("a config reaching held-out seeds was accepted")


def test_focal_loss_matches_its_definition():
    logits = torch.tensor([[2.0, -1.0], [0.5, -3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = 1 / (1 + np.exp(-logits.numpy()))
    t = target.numpy()
    p_t = np.where(t == 1, p, 1 - p)
    alpha_t = np.where(t == 1, 0.25, 0.75)
    expected = (-alpha_t * (1 - p_t) ** 2 * np.log(p_t)).mean()
    assert abs(float(focal_loss(logits, target)) - expected) < 1e-6


def test_single_clicks_train_only_the_best_token():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = torch.where(target[0] > 0, 10.0, -10.0)
    logits = torch.stack([good, -good, torch.zeros(8, 8)])[None].requires_grad_()
    iou = torch.zeros(1, 3)
    loss, _ = prompt_losses(logits, iou, target, torch.tensor([True]))
    loss.backward()
    grads = logits.grad.abs().flatten(2).sum(-1)[0]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0
    logits.grad = None
    prompt_losses(logits, iou, target, torch.tensor([False]))[0].backward()
    assert (logits.grad.abs().flatten(2).sum(-1)[0] > 0).all()


def test_prompts_follow_the_inference_layout():
    rng = np.random.default_rng(0)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 10:30] = True
    coords, labels = prompts.first_prompt(rng, "point", mask, clicks=3)
    assert labels.tolist() == [1, -1] and mask[int(coords[0, 1]), int(coords[0, 0])]
    coords, labels = prompts.first_prompt(rng, "box", mask, clicks=3)
    assert labels.tolist() == [2, 3] and np.all(np.abs(coords - [[10, 8], [30, 20]]) <= 3)
    coords, labels = prompts.first_prompt(rng, "points", mask, clicks=3)
    assert len(labels) == 4 and labels[-1] == -1 and labels[0] == 1
    for (x, y), label in zip(coords[:3], labels[:3]):
        assert mask[int(y), int(x)] == bool(label)
    predicted = np.zeros_like(mask)
    predicted[8:20, 10:20] = True  # right half missed: the correction must be a positive click there
    xy, label = prompts.correction_click(rng, predicted, mask)
    assert label == 1.0 and 20 <= xy[0] < 30
    coords, labels = prompts.add_click(*prompts.first_prompt(rng, "box", mask, 3), xy, label)
    assert labels.tolist() == [1, 2, 3]


def test_steps_draw_their_size_and_easy_scenes_from_the_config():
    config = replace(TINY, sizes=(128, 192), easy_steps=3, easy_fraction=0.5, steps=40)
    sizes = {config.step_size(step) for step in range(40)}
    assert sizes == {128, 192}
    assert all(make_batch(config, step).images.shape[-1] == config.step_size(step) for step in (0, 1, 2))
    assert all(config.easy(step, 0) for step in range(3))
    later = [config.easy(step, 0) for step in range(3, 40)]
    assert 0 < sum(later) < len(later)
    # An easy scene is flat: every masked pixel of an object has that object's one colour.
    batch = make_batch(replace(config, sizes=()), 0)
    image = batch.images[0].permute(1, 2, 0).numpy()
    for mask in batch.masks[0]:
        assert len(np.unique(image[mask].round(4), axis=0)) == 1


def test_a_step_trains_at_the_size_of_its_batch():
    config = replace(TINY, sizes=(128, 192), refine_rounds=0)
    state = new_state(config)
    for step in range(4):
        batch = make_batch(config, step)
        train_step(state.model, state.optimizer, state.scheduler, batch, step_rng(config, step), config)
        assert state.model.config.img_size == batch.images.shape[-1]
        assert state.model.prompt_encoder.dense_pe().shape[-1] == batch.images.shape[-1] // 16


def test_worker_processes_generate_the_serial_batches():
    from tinysam_mobile.training.train import batches

    config = replace(TINY, steps=3)
    for serial, parallel in zip(batches(config, 1, 3, workers=0), batches(config, 1, 3, workers=2)):
        assert torch.equal(serial.images, parallel.images)
        assert all(np.array_equal(a, b) for a, b in zip(serial.masks, parallel.masks))


def test_time_limit_stops_after_the_current_step_and_saves(tmp_path):
    state = train(new_state(replace(TINY, steps=50)), tmp_path, save_every=100, time_limit=0.0)
    assert state.step == 1 and state.seconds > 0
    assert load_state(tmp_path / "state.pt").step == 1


def test_weight_parts_join_into_the_whole_and_seed_a_new_run(tmp_path):
    from tinysam_mobile.cli import app
    from tinysam_mobile.training.job import start_state
    from tinysam_mobile.training.train import export_weights

    model = new_state(TINY).model
    export_weights(model, tmp_path / "w.safetensors", parts=True)
    encoder, decoder = tmp_path / "w.encoder.safetensors", tmp_path / "w.decoder.safetensors"
    assert encoder.stat().st_size < 16 * 2**20 and decoder.stat().st_size < 16 * 2**20
    runner = CliRunner()
    result = runner.invoke(app, ["join-weights", str(encoder), str(decoder), "--out", str(tmp_path / "j.safetensors")])
    assert result.exit_code == 0, result.output
    whole, joined = read_state_dict(tmp_path / "w.safetensors"), read_state_dict(tmp_path / "j.safetensors")
    assert whole.keys() == joined.keys() and all(torch.equal(whole[k], joined[k]) for k in whole)
    result = runner.invoke(app, ["join-weights", str(encoder), "--out", str(tmp_path / "half.safetensors")])
    assert result.exit_code != 0 and "missing: mask_decoder." in str(result.exception)
    assert not (tmp_path / "half.safetensors").exists()
    started = start_state({"img_size": 128, "steps": 1}, init_weights=tmp_path / "j.safetensors")
    assert started.step == 0 and all(torch.equal(v.half(), whole[k]) for k, v in started.model.state_dict().items()
                                     if v.is_floating_point())


def test_learning_curve_is_written_and_plotted(tmp_path):
    from tinysam_mobile.training.curve import append_point, plot_curve, read_curve

    append_point(tmp_path / "c.csv", 100, 60.0, {"miou_point": 0.25, "miou_box": 0.5, "iou_correlation": None})
    append_point(tmp_path / "c.csv", 200, 120.0, {"miou_point": 0.5, "miou_box": 0.75, "iou_correlation": 0.3})
    rows = read_curve(tmp_path / "c.csv")
    assert [row["step"] for row in rows] == [100, 200] and rows[0]["iou_correlation"] is None
    assert rows[1]["miou_box"] == 0.75
    plot_curve(tmp_path / "c.csv", tmp_path / "c.png", "test")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
