"""The Q-TinySAM import: a restricted unpickler on a pickle in Q-TinySAM's layout and on hostile pickles."""

import copy
import sys
import types

import pytest
import torch
from torch import nn

from test_checkpoint import HostilePayload
from test_cli import assert_one_line_error, run_cli
from tinysam_mobile.calibration.qtinysam import import_qtinysam, restricted_load
from tinysam_mobile.calibration.quantizers import fake_quant_activation, fake_quant_weight
from tinysam_mobile.errors import CheckpointError
from tinysam_mobile.modeling import common, mask_decoder, prompt_encoder, tiny_vit, tinysam, transformer

GELU_NEG_INTERVAL = 0.16997124254703522 / 128

# Our classes -> where the public TinySAM code defines them (what the official pickle names).
PUBLIC_NAMES = {
    tinysam.TinySam: ("sam", "Sam"), tiny_vit.TinyViT: ("tiny_vit_sam", "TinyViT"),
    tiny_vit.Conv2dBN: ("tiny_vit_sam", "Conv2d_BN"), tiny_vit.PatchEmbed: ("tiny_vit_sam", "PatchEmbed"),
    tiny_vit.MBConv: ("tiny_vit_sam", "MBConv"), tiny_vit.PatchMerging: ("tiny_vit_sam", "PatchMerging"),
    tiny_vit.ConvLayer: ("tiny_vit_sam", "ConvLayer"), tiny_vit.BasicLayer: ("tiny_vit_sam", "BasicLayer"),
    tiny_vit.TinyViTBlock: ("tiny_vit_sam", "TinyViTBlock"), tiny_vit.Attention: ("tiny_vit_sam", "Attention"),
    tiny_vit.Mlp: ("tiny_vit_sam", "Mlp"), common.LayerNorm2d: ("common", "LayerNorm2d"),
    common.MLPBlock: ("common", "MLPBlock"), common.MLP: ("mask_decoder", "MLP"),
    prompt_encoder.PromptEncoder: ("prompt_encoder", "PromptEncoder"),
    prompt_encoder.PositionEmbeddingRandom: ("prompt_encoder", "PositionEmbeddingRandom"),
    mask_decoder.MaskDecoder: ("mask_decoder", "MaskDecoder"),
    transformer.TwoWayTransformer: ("transformer", "TwoWayTransformer"),
    transformer.TwoWayAttentionBlock: ("transformer", "TwoWayAttentionBlock"),
    transformer.Attention: ("transformer", "Attention"),
}


@pytest.fixture
def fake_public_modules(monkeypatch):
    """sys.modules entries for `tinysam.modeling.*` and `quantization_layer(.layers)`, holding classes
    named as in the public code, so pickle writes the official names."""
    modules = {}

    def module(name):
        parent = name.rpartition(".")[0]
        if parent:
            module(parent)  # pickle imports the packages of a dotted module name first
        if name not in modules:
            modules[name] = types.ModuleType(name)
            monkeypatch.setitem(sys.modules, name, modules[name])
        return modules[name]

    renamed = {}
    for ours, (sub, public) in PUBLIC_NAMES.items():
        cls = type(public, (ours,), {"__module__": f"tinysam.modeling.{sub}", "__qualname__": public})
        setattr(module(f"tinysam.modeling.{sub}"), public, cls)
        renamed[ours] = cls
    layers = module("quantization_layer.layers")
    quant = {}
    for public, base in (("InferQuantConv2d", nn.Conv2d), ("InferQuantConvTranspose2d", nn.ConvTranspose2d),
                         ("InferQuantLinear", nn.Linear), ("InferQuantLinearPost", nn.Linear),
                         ("InferQuantMatMul", nn.Module), ("InferQuantMatMulPost", nn.Module)):
        quant[public] = type(public, (base,), {"__module__": "quantization_layer.layers", "__qualname__": public})
        setattr(layers, public, quant[public])
    return renamed, quant


def _ints(module, **values):
    for name, value in values.items():
        module.register_buffer(name, torch.tensor(value, dtype=torch.int32))


def qtinysam_layout(model: tinysam.TinySam, renamed, quant) -> nn.Module:
    """model as Q-TinySAM pickles it: public class names, InferQuant* layers with their buffers."""
    q = copy.deepcopy(model)
    del q.config  # our config dataclass has no counterpart in the public Sam
    for parent in list(q.modules()):
        for child_name, child in list(parent._modules.items()):
            if isinstance(child, common.MatMul):
                del parent._modules[child_name]
                continue
            kind = type(child)
            if kind in (nn.Conv2d, nn.ConvTranspose2d):
                child.__class__ = quant["InferQuantConv2d" if kind is nn.Conv2d else "InferQuantConvTranspose2d"]
                w = child.weight.detach()
                out_axis = 0 if kind is nn.Conv2d else 1
                amax = w.abs().amax(dim=[d for d in range(4) if d != out_axis], keepdim=True)
                child.register_buffer("w_interval", amax / 127)
                child.register_buffer("a_interval", torch.tensor(0.02))
                child.register_buffer("a_bias", torch.tensor(0.1))
                _ints(child, n_V=1, n_H=1)
            elif kind is nn.Linear:
                post = child_name == "fc2"
                child.__class__ = quant["InferQuantLinearPost" if post else "InferQuantLinear"]
                out_f, in_f = child.weight.shape
                w = child.weight.detach().view(2, out_f // 2, 1, in_f)
                child.register_buffer("w_interval", w.abs().amax(dim=(1, 3), keepdim=True) / 127)
                child.register_buffer("a_interval", torch.tensor([[0.05]]))
                if post:
                    child.register_buffer("a_neg_interval", torch.tensor(GELU_NEG_INTERVAL))
                _ints(child, n_V=2, n_H=1, n_a=1, crb_rows=out_f // 2, crb_cols=in_f, crb_acts=in_f)
            else:
                continue
            child.mode, child.w_bit, child.a_bit = "quant_forward", 8, 8
    for module in list(q.modules()):
        if type(module) in renamed:
            module.__class__ = renamed[type(module)]
    attn = q.image_encoder.layers[1].blocks[0].attn
    heads = attn.num_heads
    for name, cls in (("matmul1", "InferQuantMatMul"), ("matmul2", "InferQuantMatMulPost")):
        mm = quant[cls]()
        mm.mode, mm.A_bit, mm.B_bit = "quant_forward", 8, 8
        mm.register_buffer("A_interval", torch.linspace(0.01, 0.04, heads).reshape(heads, 1, 1, 1, 1, 1))
        mm.register_buffer("B_interval", torch.linspace(0.1, 0.4, heads).reshape(heads, 1, 1, 1, 1, 1))
        _ints(mm, n_G_A=heads, n_G_B=heads)
        if cls == "InferQuantMatMulPost":
            mm.register_buffer("split", torch.tensor(0.02 * 127))
        setattr(attn, name, mm)
    return q


@pytest.fixture
def qtinysam_file(tmp_path, small_model, fake_public_modules):
    path = tmp_path / "tinysam_w8a8.pth"
    torch.save(qtinysam_layout(small_model, *fake_public_modules), path)
    return path


def test_import_reads_weights_and_intervals(qtinysam_file, small_model):
    imported = import_qtinysam(qtinysam_file)
    expected = small_model.state_dict()
    assert imported.state_dict.keys() == expected.keys()
    assert all(torch.equal(imported.state_dict[k], expected[k]) for k in expected)

    conv = "image_encoder.patch_embed.seq.0.c"
    w = expected[f"{conv}.weight"]
    conv_q = imported.ops[conv].quantizers
    assert imported.ops[conv].kind == "conv" and conv_q["weight"].scale.shape == (w.shape[0], 1, 1, 1)
    # Q-TinySAM's conv formula, computed here: clamp(round(W / w_interval), -128, 127) * w_interval
    interval = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    assert torch.equal(fake_quant_weight(w, conv_q["weight"]),
                       torch.clamp(torch.round(w / interval), -128, 127) * interval)
    x = torch.linspace(-3, 3, 101)
    assert torch.allclose(fake_quant_activation(x, conv_q["input"]),
                          torch.clamp(torch.round((x - 0.1) / 0.02), -128, 127) * 0.02 + 0.1)
    assert imported.ops["mask_decoder.output_upscaling.0"].kind == "deconv"

    lin = "image_encoder.layers.1.blocks.0.attn.qkv"
    w = expected[f"{lin}.weight"]
    out_f, in_f = w.shape
    blocks = w.view(2, out_f // 2, 1, in_f)
    interval = blocks.abs().amax(dim=(1, 3), keepdim=True) / 127
    reference = (torch.clamp(torch.round(blocks / interval), -128, 127) * interval).view(out_f, in_f)
    assert imported.ops[lin].quantizers["weight"].granularity == "block"
    assert torch.equal(fake_quant_weight(w, imported.ops[lin].quantizers["weight"]), reference)

    fc2 = imported.ops["image_encoder.layers.1.blocks.0.mlp.fc2"].quantizers["input"]
    x = torch.tensor([-0.2, -0.01, 0.0, 0.26, 100.0])
    pos = torch.clamp(torch.round(x / 0.05), 0, 127) * 0.05
    neg = torch.clamp(torch.round(x / GELU_NEG_INTERVAL), -128, 0) * GELU_NEG_INTERVAL
    assert fc2.scheme == "twin_gelu" and torch.allclose(fake_quant_activation(x, fc2), pos + neg)

    qk = imported.ops["image_encoder.layers.1.blocks.0.attn.qk_matmul"].quantizers
    av = imported.ops["image_encoder.layers.1.blocks.0.attn.av_matmul"].quantizers
    assert qk["a"].granularity == "head" and torch.allclose(qk["a"].scale, torch.linspace(0.01, 0.04, 4))
    assert av["a"].scheme == "twin_softmax" and av["a"].split == pytest.approx(0.02 * 127)
    assert torch.allclose(av["b"].scale, torch.linspace(0.1, 0.4, 4))
    n_ops = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) for m in small_model.modules())
    assert len(imported.ops) == n_ops + 2


def test_cli_import_writes_scales_and_float_weights(tmp_path, qtinysam_file, small_model):
    from tinysam_mobile.calibration.scales import load_scales
    from tinysam_mobile.checkpoint import file_sha256, read_state_dict

    out = tmp_path / "q" / "qtinysam.safetensors"
    # the pickle names modules that only this process has: the CLI must not need them
    result = run_cli("calibrate", "--import-qtinysam", qtinysam_file, "--out", out)
    assert result.returncode == 0, result.stderr
    float_path = tmp_path / "q" / "qtinysam_float.safetensors"
    state = read_state_dict(float_path)
    assert all(torch.equal(state[k], v) for k, v in small_model.state_dict().items())
    scales = load_scales(out)
    assert scales.method == "q-tinysam" and scales.checkpoint_sha256 == file_sha256(float_path)
    assert (tmp_path / "q" / "qtinysam.json").is_file()


def test_hostile_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": HostilePayload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load global posix.system"):
        restricted_load(path)
    assert not marker.exists()
    result = run_cli("calibrate", "--import-qtinysam", path, "--out", tmp_path / "s.safetensors")
    assert_one_line_error(result, "refused")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: an unrestricted load runs it
    assert marker.exists()


def test_other_refusals(tmp_path, small_model):
    not_zip = tmp_path / "legacy.pth"
    not_zip.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(CheckpointError, match="zip archive"):
        restricted_load(not_zip)
    conv3d = tmp_path / "conv3d.pth"
    torch.save(nn.Conv3d(1, 1, 1), conv3d)  # a torch module outside the allow-list
    with pytest.raises(CheckpointError, match="Conv3d"):
        restricted_load(conv3d)
    state_dict_only = tmp_path / "plain.pth"
    torch.save(small_model.prompt_encoder.state_dict(), state_dict_only)
    with pytest.raises(CheckpointError, match="not a TinySAM Sam module"):
        import_qtinysam(state_dict_only)
