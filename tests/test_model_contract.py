"""The PyTorch TinySAM against the official checkpoint format and TinyViT's own definitions."""

import itertools
from pathlib import Path

import torch

from tinysam_mobile.checkpoint import seeded_model
from tinysam_mobile.modeling import TinySam, TinySamConfig
from tinysam_mobile.modeling.tiny_vit import relative_offset_index, window_partition, window_unpartition

TSV = Path(__file__).parent / "data" / "tinysam_state_dict.tsv"


def official_entries() -> dict[str, tuple[str, str]]:
    rows = [line.rstrip("\n").split("\t") for line in TSV.read_text().splitlines()[1:]]
    return {key: (shape, dtype) for key, shape, dtype in rows}


def test_state_dict_matches_official_checkpoint_exactly():
    expected = official_entries()
    state = TinySam().state_dict()
    got = {k: (str(tuple(v.shape)), str(v.dtype)) for k, v in state.items()}
    assert len(expected) == 439
    assert sorted(got) == sorted(expected)
    mismatched = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert not mismatched


def test_parameter_count_matches_paper():
    params = sum(p.numel() for p in TinySam().parameters())
    assert 10.0e6 < params < 10.2e6  # about 10.1M in REFERENCE.md section 1


def test_reduced_size_config_keeps_every_weight_shape():
    full, small = TinySam().state_dict(), TinySam(TinySamConfig(img_size=256)).state_dict()
    assert {k: v.shape for k, v in full.items()} == {k: v.shape for k, v in small.items()}


def test_relative_offset_index_matches_tinyvit_enumeration():
    # TinyViT numbers |offsets| in order of first appearance over all point pairs.
    for window in (7, 14):
        points = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                offsets.setdefault(off, len(offsets))
                idxs.append(offsets[off])
        expected = torch.tensor(idxs).view(len(points), len(points))
        assert torch.equal(relative_offset_index(window), expected)


def test_window_partition_equals_six_dim_reference_and_round_trips():
    x = torch.randn(2, 14, 21, 5)
    window = 7
    ref = x.view(2, 2, window, 3, window, 5).transpose(2, 3).reshape(-1, window * window, 5)
    windows = window_partition(x, window)
    assert torch.equal(windows, ref)
    assert torch.equal(window_unpartition(windows, window, 2, 14, 21), x)


def test_attention_biases_follow_loaded_weights_after_eval():
    """The public code caches biases at eval(); here a load after eval() must take effect."""
    config = TinySamConfig(img_size=256)
    model = seeded_model(config).eval()
    image = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        before = model.encode(image)
        state = model.state_dict()
        for key in state:
            if key.endswith("attention_biases"):
                state[key] = torch.randn_like(state[key])
        model.load_state_dict(state)
        after = model.encode(image)
        fresh = TinySam(config)
        fresh.load_state_dict(state)
        expected = fresh.eval().encode(image)
    assert not torch.allclose(before, after)
    assert torch.equal(after, expected)


def test_decoder_returns_three_masks_per_prompt_for_batches():
    model = seeded_model(TinySamConfig(img_size=256)).eval()
    with torch.no_grad():
        emb = model.encode(torch.randn(1, 3, 256, 256))
        coords = torch.rand(5, 2, 2) * 256
        labels = torch.tensor([[1.0, -1.0]]).expand(5, 2)
        logits, iou = model.decode(emb, coords, labels, torch.zeros(5, 1, 64, 64), torch.zeros(5))
        single, single_iou = model.decode(emb, coords[2:3], labels[2:3], torch.zeros(1, 1, 64, 64), torch.zeros(1))
    assert logits.shape == (5, 3, 64, 64) and iou.shape == (5, 3)
    # Batching prompts against one embedding gives each prompt's own answer.
    torch.testing.assert_close(logits[2:3], single, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou[2:3], single_iou, atol=1e-5, rtol=1e-5)


def test_padding_points_are_ignored_by_position():
    """Label -1 points carry only the not-a-point embedding: their coordinates must not matter."""
    model = seeded_model(TinySamConfig(img_size=256)).eval()
    emb = torch.randn(1, 256, 16, 16)
    labels = torch.tensor([[1.0, -1.0]])
    with torch.no_grad():
        a = model.decode(emb, torch.tensor([[[50.0, 60.0], [0.0, 0.0]]]), labels, torch.zeros(1, 1, 64, 64), torch.zeros(1))
        b = model.decode(emb, torch.tensor([[[50.0, 60.0], [200.0, 17.0]]]), labels, torch.zeros(1, 1, 64, 64), torch.zeros(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
