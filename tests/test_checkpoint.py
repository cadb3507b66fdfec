"""Loading official-format checkpoints strictly and safely."""

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tinysam_mobile.checkpoint import load_tinysam, seeded_model
from tinysam_mobile.errors import CheckpointError
from tinysam_mobile.modeling import TinySamConfig

SMALL = TinySamConfig(img_size=256)


@pytest.fixture(scope="module")
def official_state():
    """A state dict in the official format with non-default values everywhere."""
    state = seeded_model(seed=123).state_dict()
    return {k: (v + 0.01 if v.is_floating_point() else v) for k, v in state.items()}


def assert_loaded(model, state):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_loads_plain_pth_state_dict(tmp_path, official_state):
    path = tmp_path / "tinysam_42.3.pth"
    torch.save(official_state, path)
    model = load_tinysam(path, SMALL)
    assert not model.training
    assert_loaded(model, official_state)


def test_loads_state_dict_wrapped_under_model(tmp_path, official_state):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": official_state, "epoch": 3}, path)
    assert_loaded(load_tinysam(path, SMALL), official_state)


def test_loads_fp16_safetensors_as_float32(tmp_path, official_state):
    path = tmp_path / "w.safetensors"
    save_file({k: (v.half() if v.is_floating_point() else v) for k, v in official_state.items()}, str(path))
    model = load_tinysam(path, SMALL)
    weight = model.state_dict()["mask_decoder.iou_token.weight"]
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, official_state["mask_decoder.iou_token.weight"].half().float())


def test_mismatch_error_names_missing_unexpected_and_misshaped_keys(tmp_path, official_state):
    state = dict(official_state)
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.extra.weight"] = torch.zeros(3)
    state["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 128)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_tinysam(path, SMALL)
    message = str(info.value)
    assert "missing: mask_decoder.iou_token.weight" in message
    assert "unexpected: mask_decoder.extra.weight" in message
    assert "prompt_encoder.no_mask_embed.weight (1, 128) != (1, 256)" in message


class HostilePayload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_hostile_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": HostilePayload(marker)}, f)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_tinysam(path, SMALL)
    assert not marker.exists()


def test_garbage_and_missing_files_give_checkpoint_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_tinysam(garbage, SMALL)
    with pytest.raises(CheckpointError, match="not found"):
        load_tinysam(tmp_path / "absent.pth", SMALL)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_tinysam(bad_st, SMALL)


def test_non_tensor_values_are_refused(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"model": {"a": 1}}, path)
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        load_tinysam(path, SMALL)


@pytest.mark.parametrize("write", ["torch.save", "pickle.dump"])
def test_refusal_names_what_was_found_and_never_advises_weights_only_false(tmp_path, write):
    """torch's own message says re-running with weights_only=False 'will likely succeed': never repeat it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if write == "torch.save":
        torch.save({"model": HostilePayload(marker)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"model": HostilePayload(marker)}, f)
    with pytest.raises(CheckpointError) as info:
        load_tinysam(path, SMALL)
    message = str(info.value)
    assert "weights_only" not in message and "will likely succeed" not in message
    assert "\n" not in message
    assert "refused to unpickle" in message and "--import-qtinysam" in message and ".safetensors" in message
    if write == "torch.save":
        assert f"pickled {os.system.__module__}.system" in message  # the global torch refused
    assert not marker.exists()


def test_refusal_names_a_refused_class(tmp_path):
    import argparse

    path = tmp_path / "with_args.pth"
    torch.save({"model": {}, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError, match="pickled argparse.Namespace") as info:
        load_tinysam(path, SMALL)
    assert "weights_only" not in str(info.value)
