"""Palettes that carry TinySAM's PTQ: sensitivity-weighted k-means and the PTQ grid, read back from the package.

Expected values come from PyTorch (the LUT buffers coremltools' SKMPalettizer leaves on each layer,
TinySAM's quantize_codes) and from coremltools' plain post-training k-means, never from the package.
"""

import numpy as np
import pytest
import torch

from test_coreml import TwoLayers, ct, decompress_lut, ops_of, program_of
from tinysam_mobile.calibration.quantizers import quantize_codes
from tinysam_mobile.calibration.scales import OpScales, Quantizer, ScalesFile, save_scales
from tinysam_mobile.converters import coreml, coreml_compression
from tinysam_mobile.converters.config import ConvertConfig
from tinysam_mobile.errors import TinySamError

SHA = "test-sha"


@pytest.fixture()
def module():
    torch.manual_seed(0)
    return TwoLayers().eval()


def scales_file(path, module, bits=6, sensitivity=None, checkpoint=SHA):
    """A scales file of `bits`: per-channel max-abs weight scales, activation ranges, optional sensitivities."""
    qmax = 2 ** (bits - 1)
    proj, up = module.proj.weight.detach(), module.up.weight.detach()
    ops = {"proj": OpScales("linear", {"weight": Quantizer("uniform", bits, proj.abs().amax(1, keepdim=True) / qmax),
                                       "input": Quantizer("uniform", bits, torch.tensor([0.05]))}),
           "up": OpScales("deconv", {"weight": Quantizer("uniform", bits,
                                                         (up.abs().amax((0, 2, 3)) / qmax).reshape(1, -1, 1, 1)),
                                     "input": Quantizer("uniform", bits, torch.tensor([0.05]))})}
    save_scales(ScalesFile(checkpoint, "tinysam-ptq", ops, 0, weight_sensitivity=sensitivity or {}), path)
    return path


def package(plan, tmp_path, precision):
    """The plan's model converted and saved like a shipped package, then read back from disk."""
    mlmodel = coreml.convert_part(ct, plan.model, {"x": torch.randn(1, 4, 4, 128)}, ["y"], precision, "fp16")
    mlmodel, report = coreml_compression.compress(plan, mlmodel, "decoder")
    path = tmp_path / "model.mlpackage"
    mlmodel.save(str(path))
    return program_of(path), report


def lut_ops(program):
    """{'linear' | 'conv_transpose': the constexpr_lut_to_dense op feeding its weight}."""
    found = {}
    for op in ops_of(program, "constexpr_lut_to_dense"):
        consumers = [child for child in op.outputs[0].child_ops]
        while consumers and consumers[0].op_type.startswith("constexpr"):  # the grid's scale op comes between
            consumers = list(consumers[0].outputs[0].child_ops)
        found[consumers[0].op_type] = op
    return found


def stored_lut(op):
    return op.lut.op.val.val if op.lut.val is None else op.lut.val


def torch_lut(layer):
    return getattr(layer, "_COREML_/weight/lut").detach().numpy()


def test_sensitive_palettes_in_the_package_are_the_ones_fitted_in_pytorch(module, tmp_path):
    sensitivity = {"proj": torch.rand(96, 128), "up": torch.rand(96, 64, 2, 2)}
    path = scales_file(tmp_path / "s.safetensors", module, sensitivity=sensitivity)
    plan = coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize4", scales=path), SHA)
    assert plan.summary["palette_method"] == "sensitive-kmeans"  # the default when a scales file is given
    program, report = package(plan, tmp_path, "palettize4")
    luts = lut_ops(program)
    # SKMPalettizer takes no ConvTranspose2d: that one gets plain k-means after conversion, and says so
    assert set(luts) == {"linear", "conv_transpose"} and "ConvTranspose2d" in plan.summary["plain_kmeans"]
    assert [r["op"] for r in report] == [luts["conv_transpose"].outputs[0].child_ops[0].name]
    assert [r["layer"] for r in plan.weight_report] == ["proj"]
    stored = stored_lut(luts["linear"])
    assert stored.shape[-2] == 16  # 4 bits
    np.testing.assert_array_equal(stored, torch_lut(plan.model.proj).astype(np.float16).reshape(stored.shape))
    # ... and every weight decodes to the PyTorch-side palettized weight
    np.testing.assert_allclose(decompress_lut(luts["linear"]), plan.model.proj.weight.detach().numpy(), atol=2e-3)


def fitted(module, tmp_path, sensitivity, name="s.safetensors"):
    path = scales_file(tmp_path / name, module, sensitivity=sensitivity)
    return coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize4", scales=path), SHA).model


def test_zero_sensitivity_everywhere_is_plain_kmeans_exactly(module, tmp_path):
    """No gradient, no information: such a layer gets the plain k-means palette, byte for byte."""
    path = scales_file(tmp_path / "zero.safetensors", module,
                       sensitivity={"proj": torch.zeros(96, 128), "up": torch.zeros(96, 64, 2, 2)})
    zero = coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize4", scales=path), SHA)
    plain = coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize4"), SHA)
    assert plain.summary["palette_method"] == "kmeans" and zero.summary["sensitivity_weighted_layers"] == 0
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    zero_luts, plain_luts = lut_ops(package(zero, tmp_path / "a", "palettize4")[0]), lut_ops(package(plain, tmp_path / "b", "palettize4")[0])
    assert set(zero_luts) == set(plain_luts) == {"linear", "conv_transpose"}
    for op_type in zero_luts:
        np.testing.assert_array_equal(stored_lut(zero_luts[op_type]), stored_lut(plain_luts[op_type]))
        np.testing.assert_array_equal(zero_luts[op_type].indices.val, plain_luts[op_type].indices.val)


def test_sensitive_weights_are_reconstructed_better(module, tmp_path):
    """The point of the method: the weights the task loss is sensitive to keep more of their value."""
    rng = torch.Generator().manual_seed(1)
    important = torch.rand(96, 128, generator=rng) < 0.02
    sensitivity = {"proj": important.float() + 1e-9, "up": torch.ones(96, 64, 2, 2)}
    weighted = fitted(module, tmp_path, sensitivity, "weighted.safetensors").proj.weight.detach()
    uniform = fitted(module, tmp_path, {"proj": torch.ones(96, 128), "up": torch.ones(96, 64, 2, 2)},
                     "uniform.safetensors").proj.weight.detach()
    w = module.proj.weight.detach()
    error = lambda fit: float(((fit - w)[important] ** 2).mean())  # noqa: E731
    assert error(weighted) < 0.5 * error(uniform)


def test_ptq_grid_palettes_hold_tinysam_grid_exactly(module, tmp_path):
    path = scales_file(tmp_path / "s.safetensors", module, bits=6)
    plan = coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize6", scales=path, palette="ptq-grid"),
                                       SHA)
    program, report = package(plan, tmp_path, "palettize6")
    luts = lut_ops(program)
    proj_scale = module.proj.weight.detach().abs().amax(1, keepdim=True) / 32
    up_scale = (module.up.weight.detach().abs().amax((0, 2, 3)) / 32).reshape(1, -1, 1, 1)
    for op_type, weight, scale in (("linear", module.proj.weight, proj_scale), ("conv_transpose", module.up.weight, up_scale)):
        op = luts[op_type]
        # coremltools stores the LUT as integer codes times each output channel's scale
        grid = op.lut.op
        assert grid.op_type == "constexpr_blockwise_shift_scale"
        codes_lut = grid.data.val.reshape(-1, 64)
        np.testing.assert_array_equal(codes_lut, np.tile(np.arange(-32, 32), (len(codes_lut), 1)))
        np.testing.assert_allclose(grid.scale.val.reshape(-1), scale.reshape(-1).numpy(), rtol=1e-3)
        codes = quantize_codes(weight.detach(), scale, 6).numpy()
        np.testing.assert_array_equal(op.indices.val.astype(np.int64) - 32, codes)
    assert {r["layer"] for r in plan.weight_report} == {"proj", "up"} and report == []


def test_palette_options_are_checked(module, tmp_path):
    six = scales_file(tmp_path / "six.safetensors", module, bits=6)
    with pytest.raises(TinySamError, match="palettize4 needs a --bits 4 scales file"):
        coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize4", scales=six, palette="ptq-grid"), SHA)
    with pytest.raises(TinySamError, match="no weight sensitivities"):
        coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize6", scales=six), SHA)
    with pytest.raises(TinySamError, match="needs --scales"):
        coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize6", palette="sensitive-kmeans"), SHA)
    with pytest.raises(TinySamError, match="calibrated for checkpoint"):
        other = scales_file(tmp_path / "other.safetensors", module, checkpoint="other-sha",
                            sensitivity={"proj": torch.ones(96, 128)})
        coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize6", scales=other), SHA)
    with pytest.raises(TinySamError, match="applies to --precision palettize"):
        coreml_compression.plan_for(module, ConvertConfig("coreml", "int8", palette="ptq-grid"), SHA)
    with pytest.raises(TinySamError, match="unknown --palette"):
        coreml_compression.plan_for(module, ConvertConfig("coreml", "palettize6", palette="median"), SHA)


def test_palette_misuse_on_the_command_line_is_one_error_line(tmp_path):
    from test_cli import assert_one_line_error, run_cli

    out = tmp_path / "out"
    assert_one_line_error(run_cli("convert", "--target", "tflite", "--precision", "fp32", "--palette", "ptq-grid",
                                  "-o", out), "--palette")
    assert_one_line_error(run_cli("convert", "--target", "coreml", "--precision", "palettize6", "--palette",
                                  "sensitive-kmeans", "-o", out), "--scales")
    assert not out.exists()


class EncoderLike(torch.nn.Module):
    """Two linears named like TinySAM's: the patch embedding (kept at 8 bits below 8) and the neck."""

    def __init__(self):
        super().__init__()
        self.image_encoder = torch.nn.Module()
        self.image_encoder.patch_embed = torch.nn.Sequential(torch.nn.Linear(128, 128))
        self.image_encoder.neck = torch.nn.Sequential(torch.nn.Linear(128, 128))

    def forward(self, x):
        return self.image_encoder.neck(self.image_encoder.patch_embed(x))


@pytest.mark.parametrize("method", ["kmeans", "sensitive-kmeans"])
def test_narrow_palettes_keep_the_convolution_stage_at_8_bits(method, tmp_path):
    from tinysam_mobile.converters.coreml_package import load_program

    torch.manual_seed(0)
    model = EncoderLike().eval()
    names = ("image_encoder.patch_embed.0", "image_encoder.neck.0")
    scales = None
    if method == "sensitive-kmeans":
        ops = {name: OpScales("linear", {"weight": Quantizer("uniform", 8, torch.full((128, 1), 0.01)),
                                         "input": Quantizer("uniform", 8, torch.tensor([0.05]))}) for name in names}
        scales = tmp_path / "s.safetensors"
        save_scales(ScalesFile(SHA, "tinysam-ptq", ops, 0, weight_sensitivity={n: torch.rand(128, 128) for n in names}),
                    scales)
    plan = coreml_compression.plan_for(model, ConvertConfig("coreml", "palettize4", scales=scales), SHA)
    assert plan.summary["palette_method"] == method and "8-bit palettes" in plan.summary["wide_layers"]
    mlmodel = coreml.convert_part(ct, plan.model, {"x": torch.randn(1, 4, 4, 128)}, ["y"], "palettize4", "fp16")
    mlmodel, report = coreml_compression.compress(plan, mlmodel, "encoder")
    mlmodel.save(str(tmp_path / "model.mlpackage"))
    program = program_of(tmp_path / "model.mlpackage")
    layer_of = coreml_compression.mil_layer_names(load_program(mlmodel), names)
    entries = {layer_of[op.outputs[0].child_ops[0].name]: stored_lut(op).shape[-2]
               for op in ops_of(program, "constexpr_lut_to_dense")}
    assert entries == {"image_encoder.patch_embed.0": 256, "image_encoder.neck.0": 16}
    reported = {r.get("layer") or layer_of[r["op"]]: r["bits"] for r in report}
    assert reported == {"image_encoder.patch_embed.0": 8, "image_encoder.neck.0": 4}
    # palettize8 has nothing narrower to widen
    assert coreml_compression.plan_for(model, ConvertConfig("coreml", "palettize8"), SHA).wide_layers == ()
