"""MIL interpreter, op by op: tiny ML Programs built with coremltools' MIL builder, serialised to real
.mlpackage files, executed by tinysam_mobile.mil and compared with independent references (torch
ops, or formulas evaluated by hand in float64)."""

import itertools
import math

import coremltools as ct
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.converter import mil_convert
from coremltools.converters.mil.mil import Function, Program, types

from tinysam_mobile.errors import TinySamError
from tinysam_mobile.mil import MilError, MilProgram, UnsupportedOpError

MIL_DTYPES = {np.dtype(np.float32): types.fp32, np.dtype(np.float16): types.fp16,
              np.dtype(np.int32): types.int32, np.dtype(np.bool_): types.bool}
_package_ids = itertools.count()


def build_package(directory, build, inputs: dict[str, np.ndarray], target=None):
    """Serialise the program `build(**placeholders)` (ops kept exactly as built) and open it."""
    target = target or ct.target.iOS17
    placeholders = {name: mb.placeholder(shape=a.shape, dtype=MIL_DTYPES[a.dtype]) for name, a in inputs.items()}
    with Function(placeholders, opset_version=target) as function:
        outputs = build(**function.inputs)
        function.set_outputs(list(outputs) if isinstance(outputs, (list, tuple)) else [outputs])
    program = Program()
    program.add_function("main", function)
    path = directory / f"op{next(_package_ids)}.mlpackage"
    to_mlmodel(program, target, ct.PassPipeline.EMPTY).save(str(path))
    return MilProgram(path)


def to_mlmodel(program, target, pipeline=None):
    """ct.convert's MIL-program path without its full gc.collect() (0.5 s per call in a big test process)."""
    return mil_convert(program, convert_from="milinternal", convert_to="mlprogram",
                       compute_units=ct.ComputeUnit.CPU_ONLY, specification_version=target,
                       main_pipeline=pipeline, skip_model_load=True)


def run(tmp_path, build, target=None, **inputs):
    """Outputs of the one-op program as a list, in program order."""
    program = build_package(tmp_path, build, inputs, target)
    outputs = program.predict(inputs)
    return [outputs[name] for name in program.output_names]


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- element-wise


@pytest.mark.parametrize("op,reference", [
    ("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("real_div", torch.div),
    ("maximum", torch.maximum), ("minimum", torch.minimum), ("pow", None),
    ("floor_div", lambda a, b: torch.div(a, b, rounding_mode="floor")), ("mod", torch.remainder),
])
def test_binary_arithmetic_broadcasts_like_torch(tmp_path, op, reference):
    x, y = rand(2, 1, 4, seed=1), rand(3, 1, seed=2)
    if op == "pow":
        x, reference = np.abs(x) + 0.5, torch.pow
    (out,) = run(tmp_path, lambda x, y: getattr(mb, op)(x=x, y=y), x=x, y=y)
    expected = reference(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op,reference", [
    ("equal", torch.eq), ("not_equal", torch.ne), ("greater", torch.gt), ("greater_equal", torch.ge),
    ("less", torch.lt), ("less_equal", torch.le),
])
def test_comparisons(tmp_path, op, reference):
    """(Core ML has no bool model outputs: coremltools appends a cast to fp32.)"""
    x = np.array([[-1, 0, 1, 2]], np.float32)
    y = np.array([[0], [1]], np.float32)
    (out,) = run(tmp_path, lambda x, y: getattr(mb, op)(x=x, y=y), x=x, y=y)
    np.testing.assert_array_equal(out, reference(torch.from_numpy(x), torch.from_numpy(y)).numpy().astype(np.float32))


def test_select_and_logical_ops(tmp_path):
    cond = np.array([[True, False, True]])
    a, b = rand(2, 3, seed=3), rand(1, 3, seed=4)
    out, both = run(tmp_path, lambda cond, a, b: (mb.select(cond=cond, a=a, b=b),
                                                  mb.logical_and(x=cond, y=mb.logical_not(x=cond))),
                    cond=cond, a=a, b=b)
    np.testing.assert_array_equal(out, torch.where(torch.from_numpy(cond), torch.from_numpy(a), torch.from_numpy(b)))
    assert not both.any()


@pytest.mark.parametrize("op,reference", [
    ("sqrt", math.sqrt), ("exp", math.exp), ("sin", math.sin), ("cos", math.cos), ("tanh", math.tanh),
    ("erf", math.erf), ("abs", abs), ("floor", math.floor), ("ceil", math.ceil), ("square", lambda v: v * v),
    ("sign", lambda v: math.copysign(1.0, v) if v else 0.0), ("atan", math.atan),
])
def test_unary_math_against_python_math(tmp_path, op, reference):
    x = np.array([0.1, 0.5, 1.0, 2.5, 3.0, 0.0, 1.7], np.float32)
    if op not in ("sqrt",):
        x = np.concatenate([x, -x[1:]])
    (out,) = run(tmp_path, lambda x: getattr(mb, op)(x=x), x=x)
    expected = np.array([reference(float(v)) for v in x])
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-6)


def test_round_is_half_to_even(tmp_path):
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6], np.float32)
    (out,) = run(tmp_path, lambda x: mb.round(x=x), x=x)
    np.testing.assert_array_equal(out, [-2, -2, -0, 0, 2, 2, 3])


def test_rsqrt_inverse_log_use_their_epsilon(tmp_path):
    x = np.array([0.0, 0.25, 4.0], np.float32)
    r, inv, lg = run(tmp_path, lambda x: (mb.rsqrt(x=x, epsilon=0.25), mb.inverse(x=x, epsilon=0.5),
                                          mb.log(x=x, epsilon=1.0)), x=x)
    np.testing.assert_allclose(r, [2.0, 1 / math.sqrt(0.5), 1 / math.sqrt(4.25)], rtol=1e-6)
    np.testing.assert_allclose(inv, [2.0, 1 / 0.75, 1 / 4.5], rtol=1e-6)
    np.testing.assert_allclose(lg, [0.0, math.log(1.25), math.log(5.0)], rtol=1e-6)


def test_clip_and_cast(tmp_path):
    x = np.array([-3.7, -0.2, 0.6, 2.9, 70000.0], np.float32)
    zero = np.zeros_like(x)
    clipped, as_int, as_half, as_bool = run(tmp_path, lambda x: (
        mb.clip(x=x, alpha=-1.0, beta=2.0), mb.cast(x=x, dtype="int32"), mb.cast(x=x, dtype="fp16"),
        mb.cast(x=mb.add(x=x, y=zero), dtype="bool")), x=x)
    np.testing.assert_allclose(clipped, [-1.0, -0.2, 0.6, 2.0, 2.0])
    np.testing.assert_array_equal(as_int, [-3, 0, 0, 2, 70000])  # truncation toward zero
    assert as_half.dtype == np.float16 and np.isinf(as_half[-1]) and as_half[0] == np.float16(-3.7)
    np.testing.assert_array_equal(as_bool, [1, 1, 1, 1, 1])  # bool, cast to fp32 at the output


def test_remaining_unary_activation_and_reduction_ops(tmp_path):
    x = np.array([[0.1, 0.4, -0.3], [0.7, -0.9, 0.2]], np.float32)
    v = x.astype(np.float64)
    names = ["exp2", "acos", "asin", "atanh", "cosh", "sinh", "tan"]
    outputs = run(tmp_path, lambda x: [getattr(mb, n)(x=x) for n in names] + [
        mb.threshold(x=x, alpha=0.15), mb.elu(x=x, alpha=2.0), mb.sigmoid_hard(x=x, alpha=0.5, beta=0.25),
        mb.softplus(x=x), mb.reverse(x=x, axes=[-1]), mb.reduce_sum_square(x=x, axes=[1]),
        mb.reduce_l1_norm(x=x, axes=[0]), mb.reduce_l2_norm(x=x), mb.reduce_log_sum(x=mb.abs(x=x), axes=[-1]),
        mb.reduce_argmin(x=x, axis=0)], x=x)
    expected = [np.exp2(v), np.arccos(v), np.arcsin(v), np.arctanh(v), np.cosh(v), np.sinh(v), np.tan(v),
                np.maximum(v, 0.15), np.where(v > 0, v, 2.0 * np.expm1(v)), np.clip(0.5 * v + 0.25, 0, 1),
                np.log1p(np.exp(v)), v[:, ::-1], (v ** 2).sum(1), np.abs(v).sum(0), np.sqrt((v ** 2).sum()),
                np.log(np.abs(v).sum(-1)), np.array([0, 1, 0])]
    for name, out, ref in zip(names + ["threshold", "elu", "sigmoid_hard", "softplus", "reverse", "sum_square",
                                       "l1", "l2", "log_sum", "argmin"], outputs, expected):
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-6, err_msg=name)


def test_shape_fill_range(tmp_path):
    x = rand(2, 5, seed=46)
    shape, filled, like, ramp = run(
        tmp_path, lambda x: (mb.shape(x=x), mb.fill(shape=mb.shape(x=x), value=2.5),
                             mb.fill_like(ref_tensor=x, value=np.float16(-1.5)),
                             mb.range_1d(start=np.int32(1), end=np.int32(10), step=np.int32(3))),
        x=x, target=ct.target.iOS16)
    np.testing.assert_array_equal(shape, [2, 5])
    np.testing.assert_array_equal(filled, np.full((2, 5), 2.5))
    assert like.dtype == np.float16
    np.testing.assert_array_equal(like, np.full((2, 5), -1.5))
    np.testing.assert_array_equal(ramp, [1, 4, 7])


# ---------------------------------------------------------------- fp16 storage


def test_fp16_results_round_once_and_overflow_to_inf(tmp_path):
    x = np.array([2048.0, 300.0, 1.0, -60000.0], np.float16)
    y = np.array([1.0, 300.0, 2.0 ** -11, -60000.0], np.float16)
    total, product = run(tmp_path, lambda x, y: (mb.add(x=x, y=y), mb.mul(x=x, y=y)), x=x, y=y)
    assert total.dtype == np.float16 and product.dtype == np.float16
    # 2049 is not representable in fp16: round to even gives 2048; 1 + 2^-11 is a tie -> 1.0
    np.testing.assert_array_equal(total[:3], np.array([2048.0, 600.0, 1.0], np.float16))
    assert np.isneginf(total[3])                  # -120000 overflows fp16
    assert np.isinf(product[1]) and product[1] > 0  # 90000 > 65504
    assert product[2] == np.float16(2.0 ** -11)


def test_fp16_chain_is_rounded_between_ops(tmp_path):
    """(x + 1) - x in fp16 storage loses the 1 for x = 4096, where fp32 storage would keep it."""
    x = np.array([4096.0, 8.0], np.float16)
    (out,) = run(tmp_path, lambda x: mb.sub(x=mb.add(x=x, y=np.float16(1.0)), y=x), x=x)
    np.testing.assert_array_equal(out, np.array([0.0, 1.0], np.float16))


def test_fp16_linear_matches_fp32_math_rounded(tmp_path):
    x = rand(3, 8, seed=5).astype(np.float16)
    w, b = rand(4, 8, seed=6).astype(np.float16), rand(4, seed=7).astype(np.float16)
    (out,) = run(tmp_path, lambda x: mb.linear(x=x, weight=w, bias=b), x=x)
    expected = (x.astype(np.float64) @ w.astype(np.float64).T + b).astype(np.float16)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- activations and normalisation


def gelu_exact(v):
    return 0.5 * v * (1 + math.erf(v / math.sqrt(2)))


def gelu_tanh(v):
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


@pytest.mark.parametrize("mode,formula", [("EXACT", gelu_exact), ("TANH_APPROXIMATION", gelu_tanh),
                                          ("SIGMOID_APPROXIMATION", lambda v: v / (1 + math.exp(-1.702 * v)))])
def test_gelu_modes(tmp_path, mode, formula):
    x = np.linspace(-5, 5, 41, dtype=np.float32)
    (out,) = run(tmp_path, lambda x: mb.gelu(x=x, mode=mode), x=x)
    np.testing.assert_allclose(out, [formula(float(v)) for v in x], rtol=1e-5, atol=1e-6)


def test_simple_activations(tmp_path):
    x = np.linspace(-8, 8, 33, dtype=np.float32)
    relu, relu6, sigmoid, silu, leaky = run(tmp_path, lambda x: (
        mb.relu(x=x), mb.relu6(x=x), mb.sigmoid(x=x), mb.silu(x=x), mb.leaky_relu(x=x, alpha=0.1)), x=x)
    v = x.astype(np.float64)
    np.testing.assert_array_equal(relu, np.where(v > 0, v, 0))
    np.testing.assert_array_equal(relu6, np.minimum(np.maximum(v, 0), 6))
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-v)), rtol=1e-6)
    np.testing.assert_allclose(silu, v / (1 + np.exp(-v)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(leaky, np.where(v >= 0, v, 0.1 * v), rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1, -3])
def test_softmax_axes(tmp_path, axis):
    x = rand(2, 3, 5, seed=8) * 10
    (out,) = run(tmp_path, lambda x: mb.softmax(x=x, axis=axis), x=x)
    e = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=axis, keepdims=True), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axes", [[-1], [1, 2], [0, 2]])
def test_layer_norm_over_any_axes(tmp_path, axes):
    x = rand(2, 3, 4, seed=9) * 3 + 1
    shape = [x.shape[a] for a in sorted(a % 3 for a in axes)]
    gamma, beta = rand(*shape, seed=10), rand(*shape, seed=11)
    (out,) = run(tmp_path, lambda x: mb.layer_norm(x=x, axes=axes, gamma=gamma, beta=beta, epsilon=1e-3), x=x)
    v = x.astype(np.float64)
    axes_t = tuple(sorted(a % 3 for a in axes))
    mean, var = v.mean(axis=axes_t, keepdims=True), v.var(axis=axes_t, keepdims=True)
    broadcast = [x.shape[i] if i in axes_t else 1 for i in range(3)]
    expected = (v - mean) / np.sqrt(var + 1e-3) * gamma.reshape(broadcast) + beta.reshape(broadcast)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_and_instance_norm(tmp_path):
    x = rand(2, 3, 4, 5, seed=12)
    mean, var = rand(3, seed=13), np.abs(rand(3, seed=14)) + 0.1
    gamma, beta = rand(3, seed=15), rand(3, seed=16)
    bn, inorm = run(tmp_path, lambda x: (
        mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-4),
        mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-4)), x=x)
    c = (1, 3, 1, 1)
    v = x.astype(np.float64)
    np.testing.assert_allclose(bn, (v - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-4) * gamma.reshape(c)
                               + beta.reshape(c), rtol=1e-5, atol=1e-5)
    m, s = v.mean(axis=(2, 3), keepdims=True), v.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(inorm, (v - m) / np.sqrt(s + 1e-4) * gamma.reshape(c) + beta.reshape(c),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,reference", [("reduce_mean", np.mean), ("reduce_sum", np.sum),
                                          ("reduce_max", np.max), ("reduce_min", np.min),
                                          ("reduce_prod", np.prod)])
@pytest.mark.parametrize("axes,keep_dims", [([-1], False), ([0, 2], True), (None, False)])
def test_reductions(tmp_path, op, reference, axes, keep_dims):
    x = rand(2, 3, 4, seed=17)
    kwargs = {"keep_dims": keep_dims} if axes is None else {"axes": axes, "keep_dims": keep_dims}
    (out,) = run(tmp_path, lambda x: getattr(mb, op)(x=x, **kwargs), x=x)
    expected = reference(x.astype(np.float64), axis=None if axes is None else tuple(axes), keepdims=keep_dims)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_argmax_and_log_sum_exp(tmp_path):
    x = rand(3, 5, seed=18)
    arg, lse = run(tmp_path, lambda x: (mb.reduce_argmax(x=x, axis=-1, keep_dims=True),
                                        mb.reduce_log_sum_exp(x=x, axes=[0])), x=x)
    np.testing.assert_array_equal(arg, torch.from_numpy(x).argmax(-1, keepdim=True).numpy())
    np.testing.assert_allclose(lse, torch.logsumexp(torch.from_numpy(x).double(), 0).numpy(), rtol=1e-6)


# ---------------------------------------------------------------- linear algebra and convolutions


@pytest.mark.parametrize("transpose_x,transpose_y", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_transposes_and_batch_broadcasting(tmp_path, transpose_x, transpose_y):
    x = rand(2, 1, *((4, 3) if transpose_x else (3, 4)), seed=19)
    y = rand(5, *((6, 4) if transpose_y else (4, 6)), seed=20)
    (out,) = run(tmp_path, lambda x, y: mb.matmul(x=x, y=y, transpose_x=transpose_x, transpose_y=transpose_y),
                 x=x, y=y)
    a = x.swapaxes(-1, -2) if transpose_x else x
    b = y.swapaxes(-1, -2) if transpose_y else y
    expected = np.einsum("bxij,yjk->byik", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_linear_without_bias(tmp_path):
    x, w = rand(2, 3, 5, seed=21), rand(4, 5, seed=22)
    (out,) = run(tmp_path, lambda x: mb.linear(x=x, weight=w), x=x)
    np.testing.assert_allclose(out, np.einsum("abi,oi->abo", x.astype(np.float64), w), rtol=1e-5, atol=1e-5)


def direct_conv2d(x, w, stride, pads, dilation, groups):
    """Textbook convolution in float64: explicit zero padding, then a sum over each window."""
    x = np.pad(x.astype(np.float64), [(0, 0), (0, 0), pads[0], pads[1]])
    n, c, h, wd = x.shape
    out_c, group_c, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, out_c, oh, ow))
    per_group = out_c // groups
    for o in range(out_c):
        g = o // per_group
        for i, j in itertools.product(range(oh), range(ow)):
            rows = i * stride[0] + dilation[0] * np.arange(kh)
            cols = j * stride[1] + dilation[1] * np.arange(kw)
            window = x[:, g * group_c:(g + 1) * group_c][:, :, rows][:, :, :, cols]
            out[:, o, i, j] = (window * w[o]).sum(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("pad_type,pad,stride,dilation,groups,kernel,expected_pads", [
    ("valid", None, (1, 1), (1, 1), 1, (3, 3), ((0, 0), (0, 0))),
    ("custom", [1, 2, 0, 1], (2, 1), (1, 1), 1, (3, 3), ((1, 2), (0, 1))),
    # 7x8 input, stride 2 -> 4x4 output; total padding (4 - 1) * 2 + k - size = 1 on both axes
    ("same", None, (2, 2), (1, 1), 2, (2, 3), ((0, 1), (0, 1))),
    ("same_lower", None, (2, 2), (1, 1), 1, (2, 3), ((1, 0), (1, 0))),
    ("custom", [2, 2, 2, 2], (1, 1), (2, 2), 4, (3, 3), ((2, 2), (2, 2))),
])
def test_conv2d_padding_modes_stride_dilation_groups(tmp_path, pad_type, pad, stride, dilation, groups, kernel,
                                                     expected_pads):
    x = rand(1, 4, 7, 8, seed=23)
    w, bias = rand(4, 4 // groups, *kernel, seed=24), rand(4, seed=25)
    kwargs = {"pad": pad} if pad is not None else {}
    (out,) = run(tmp_path, lambda x: mb.conv(x=x, weight=w, bias=bias, strides=list(stride), pad_type=pad_type,
                                             dilations=list(dilation), groups=groups, **kwargs), x=x)
    expected = direct_conv2d(x, w, stride, expected_pads, dilation, groups) + bias.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_conv1d(tmp_path):
    x, w = rand(1, 2, 9, seed=26), rand(3, 2, 3, seed=27)
    (out,) = run(tmp_path, lambda x: mb.conv(x=x, weight=w, strides=[2], pad_type="custom", pad=[1, 1]), x=x)
    expected = direct_conv2d(x[:, :, None], w[:, :, None], (1, 2), ((0, 0), (1, 1)), (1, 1), 1)[:, :, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def direct_conv_transpose2d(x, w, stride, groups):
    """Scatter form of the transposed convolution (no padding) in float64."""
    n, c_in, h, wd = x.shape
    _, per_group_out, kh, kw = w.shape
    out = np.zeros((n, per_group_out * groups, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    per_group_in = c_in // groups
    for ci in range(c_in):
        g = ci // per_group_in
        for i, j in itertools.product(range(h), range(wd)):
            out[:, g * per_group_out:(g + 1) * per_group_out, i * stride:i * stride + kh, j * stride:j * stride + kw] += \
                x[:, ci, i, j][:, None, None, None] * w[ci][None]
    return out


@pytest.mark.parametrize("pad_type,pad,output_shape,groups", [
    ("valid", None, None, 1),
    ("custom", [1, 0, 0, 2], None, 2),
    ("valid", None, [1, 4, 10, 10], 1),  # larger than the full result: the extra positions get only the bias
])
def test_conv_transpose(tmp_path, pad_type, pad, output_shape, groups):
    x = rand(1, 4, 3, 4, seed=28)
    w, bias = rand(4, 4 // groups, 3, 3, seed=29), rand(4, seed=30)
    kwargs = {"pad": pad} if pad is not None else {}
    if output_shape is not None:
        kwargs["output_shape"] = output_shape
    (out,) = run(tmp_path, lambda x: mb.conv_transpose(x=x, weight=w, bias=bias, strides=[2, 2], pad_type=pad_type,
                                                       groups=groups, **kwargs), x=x)
    full = direct_conv_transpose2d(x, w, 2, groups)
    if pad is not None:
        full = full[:, :, pad[0]:full.shape[2] - pad[1], pad[2]:full.shape[3] - pad[3]]
    if output_shape is not None:
        grown = np.zeros(output_shape)
        grown[:, :, :full.shape[2], :full.shape[3]] = full
        full = grown
    np.testing.assert_allclose(out, full + bias.reshape(1, -1, 1, 1), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- data movement


def test_reshape_zero_and_minus_one(tmp_path):
    x = rand(2, 50, seed=31)
    a, b, c = run(tmp_path, lambda x: (mb.reshape(x=x, shape=[1, 0, -1, 0]),  # iOS17: zeros align right
                                       mb.reshape(x=x, shape=[-1, 10]), mb.reshape(x=x, shape=[0, 4, -1])), x=x)
    assert a.shape == (1, 1, 2, 50) and b.shape == (10, 10)
    assert c.shape == (1, 4, 25)  # the leading 0 has no matching dim of x (right-aligned): it becomes 1
    np.testing.assert_array_equal(a.ravel(), x.ravel())
    np.testing.assert_array_equal(c, x.reshape(1, 4, 25))


def test_transpose_expand_squeeze(tmp_path):
    x = rand(2, 1, 3, seed=32)
    t, e, s = run(tmp_path, lambda x: (mb.transpose(x=x, perm=[2, 0, 1]), mb.expand_dims(x=x, axes=[-1, 0]),
                                       mb.squeeze(x=x, axes=[-2])), x=x)
    np.testing.assert_array_equal(t, torch.from_numpy(x).permute(2, 0, 1).numpy())
    assert e.shape == (1, 2, 1, 3, 1) and s.shape == (2, 3)


def test_slice_by_index_masks_negative_and_strides(tmp_path):
    x = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    a, b, c = run(tmp_path, lambda x: (
        mb.slice_by_index(x=x, begin=[1, -5, 0], end=[3, -1, 0], stride=[1, 2, 1],
                          end_mask=[False, False, True]),
        mb.slice_by_index(x=x, begin=[0, 2, 4], end=[0, 0, 0], stride=[1, 1, -2],
                          begin_mask=[True, False, False], end_mask=[True, True, True]),
        mb.slice_by_index(x=x, begin=[2, 0, -1], end=[3, 6, 0], squeeze_mask=[True, False, True],
                          end_mask=[False, False, True])), x=x)
    np.testing.assert_array_equal(a, x[1:3, -5:-1:2, :])
    np.testing.assert_array_equal(b, x[:, 2:, 4::-2])
    np.testing.assert_array_equal(c, x[2, :, -1])


def test_slice_by_size(tmp_path):
    x = np.arange(5 * 6, dtype=np.float32).reshape(5, 6)
    (out,) = run(tmp_path, lambda x: mb.slice_by_size(x=x, begin=[1, -4], size=[-1, 2]), x=x)
    np.testing.assert_array_equal(out, x[1:, 2:4])


def test_concat_interleave_split_stack(tmp_path):
    a, b = rand(2, 3, seed=33), rand(2, 3, seed=34)
    cat, inter, stacked, s1, s2, s3 = run(tmp_path, lambda a, b: (
        mb.concat(values=[a, b], axis=-1), mb.concat(values=[a, b], axis=0, interleave=True),
        mb.stack(values=[a, b], axis=1), *mb.split(x=a, split_sizes=[1, 2], axis=-1),
        mb.split(x=b, num_splits=2, axis=0)[1]), a=a, b=b)
    np.testing.assert_array_equal(cat, np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(inter, np.array([a[0], b[0], a[1], b[1]]))
    np.testing.assert_array_equal(stacked, torch.stack([torch.from_numpy(a), torch.from_numpy(b)], 1).numpy())
    np.testing.assert_array_equal(s1, a[:, :1])
    np.testing.assert_array_equal(s2, a[:, 1:])
    np.testing.assert_array_equal(s3, b[1:])


def test_gather_axes_and_batch_dims(tmp_path):
    x = rand(2, 5, 3, seed=35)
    idx = np.array([[4, 0], [1, 1], [2, 3]], np.int32)
    batch_idx = np.array([[0, 4], [3, 3]], np.int32)
    plain, neg, batched = run(tmp_path, lambda x, idx, batch_idx: (
        mb.gather(x=x, indices=idx, axis=1), mb.gather(x=x, indices=idx, axis=-2),
        mb.gather(x=x, indices=batch_idx, axis=1, batch_dims=1)), x=x, idx=idx, batch_idx=batch_idx)
    np.testing.assert_array_equal(plain, x[:, idx, :])
    np.testing.assert_array_equal(neg, x[:, idx, :])  # axis -2 is axis 1
    np.testing.assert_array_equal(batched, np.stack([x[0, batch_idx[0]], x[1, batch_idx[1]]]))


def test_gather_along_axis_and_tile(tmp_path):
    x = rand(3, 4, seed=36)
    idx = np.array([[3, 0, 1, 1], [2, 2, 0, 3], [1, 0, 0, 0]], np.int32)
    g, t = run(tmp_path, lambda x, idx: (mb.gather_along_axis(x=x, indices=idx, axis=-1),
                                         mb.tile(x=x, reps=[2, 1])), x=x, idx=idx)
    np.testing.assert_array_equal(g, torch.gather(torch.from_numpy(x), 1, torch.from_numpy(idx).long()).numpy())
    np.testing.assert_array_equal(t, np.concatenate([x, x]))


@pytest.mark.parametrize("mode,torch_mode", [("constant", "constant"), ("reflect", "reflect"),
                                             ("replicate", "replicate")])
def test_pad_modes_on_last_dims(tmp_path, mode, torch_mode):
    x = rand(1, 2, 4, 5, seed=37)
    (out,) = run(tmp_path, lambda x: mb.pad(x=x, pad=[1, 2, 3, 0], mode=mode, constant_val=1.5), x=x)
    kwargs = {"value": 1.5} if mode == "constant" else {}
    expected = F.pad(torch.from_numpy(x), [3, 0, 1, 2], mode=torch_mode, **kwargs).numpy()  # torch: last dim first
    np.testing.assert_array_equal(out, expected)


def test_fp16_data_movement_is_exact(tmp_path):
    x = (rand(2, 6, seed=38) * 1000).astype(np.float16)
    t, p = run(tmp_path, lambda x: (mb.transpose(x=x, perm=[1, 0]), mb.pad(x=x, pad=[0, 1])), x=x)
    assert t.dtype == p.dtype == np.float16
    np.testing.assert_array_equal(t, x.T)
    np.testing.assert_array_equal(p[:, :6], x)


# ---------------------------------------------------------------- quantisation ops


def test_quantize_rounds_half_to_even_and_saturates(tmp_path):
    x = np.array([-100.0, -1.25, -0.75, 0.25, 0.75, 1.25, 100.0], np.float32)
    q, u = run(tmp_path, lambda x: (mb.quantize(input=x, scale=np.float32(0.5), output_dtype="int8"),
                                    mb.quantize(input=x, scale=np.float32(0.5), zero_point=np.uint8(128),
                                                output_dtype="uint8")), x=x)
    # (int8 / uint8 are not Core ML output types: coremltools appends a cast to int32)
    np.testing.assert_array_equal(q, [-128, -2, -2, 0, 2, 2, 127])  # -2.5 -> -2, -1.5 -> -2, 0.5 -> 0, 1.5 -> 2
    np.testing.assert_array_equal(u, [0, 126, 126, 128, 130, 130, 255])


def test_per_channel_quantize_dequantize_round_trip(tmp_path):
    x = rand(2, 3, 4, seed=39)
    scale = (np.abs(x).max(axis=(0, 2)) / 127).astype(np.float32)
    zero = np.array([0, 3, -2], np.int8)
    (out,) = run(tmp_path, lambda x: mb.dequantize(
        input=mb.quantize(input=x, scale=scale, zero_point=zero, axis=1, output_dtype="int8"),
        scale=scale, zero_point=zero, axis=1), x=x)
    s, z = scale.reshape(1, 3, 1), zero.reshape(1, 3, 1).astype(np.float64)
    codes = np.clip(np.round(x / s) + z, -128, 127)
    np.testing.assert_allclose(out, (codes - z) * s, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- constexpr decompression round trips


def on_grid_weight(seed, shape, levels):
    """A weight whose values take `levels` distinct values on an evenly spaced grid, with the largest
    magnitude in every row and every block of 8 columns (so max-abs scales land on the grid):
    quantisation with >= levels codes and palettes with >= levels entries represent it exactly, so
    decompression must give it back."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-(levels // 2), levels // 2, size=shape)
    codes[:, ::8] = -(levels // 2)
    return (codes * 0.125).astype(np.float32)


def compressed_linear(tmp_path, weight, compress, target):
    """A linear layer with `weight`, compressed by coremltools.optimize.coreml, then interpreted."""
    import coremltools.optimize.coreml as cto

    x = rand(3, weight.shape[1], seed=40)
    model = compress(cto, to_mlmodel(_linear_program(weight, target), target))
    path = tmp_path / f"compressed{next(_package_ids)}.mlpackage"
    model.save(str(path))
    program = MilProgram(path)
    return program, x, program.predict({"x": x})[program.output_names[0]]


def _linear_program(weight, target):
    with Function({"x": mb.placeholder(shape=(3, weight.shape[1]))}, opset_version=target) as function:
        function.set_outputs([mb.linear(x=function.inputs["x"], weight=weight)])
    program = Program()
    program.add_function("main", function)
    return program


COMPRESSIONS = {
    "int8_per_channel": lambda cto: cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                                granularity="per_channel", weight_threshold=0),
    "int4_blockwise": lambda cto: cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4",
                                                              granularity="per_block", block_size=8,
                                                              weight_threshold=0),
    "palette_4bit": lambda cto: cto.OpPalettizerConfig(mode="unique", weight_threshold=0),
    "palette_grouped": lambda cto: cto.OpPalettizerConfig(mode="unique", granularity="per_grouped_channel",
                                                          group_size=2, weight_threshold=0),
}


@pytest.mark.parametrize("target_name,compression,levels,op_type", [
    ("iOS16", "int8_per_channel", 255, "constexpr_affine_dequantize"),
    ("iOS18", "int8_per_channel", 255, "constexpr_blockwise_shift_scale"),
    ("iOS18", "int4_blockwise", 15, "constexpr_blockwise_shift_scale"),
    ("iOS16", "palette_4bit", 16, "constexpr_lut_to_dense"),
    ("iOS18", "palette_4bit", 16, "constexpr_lut_to_dense"),
    ("iOS18", "palette_grouped", 16, "constexpr_lut_to_dense"),
])
def test_weight_decompression_recovers_on_grid_weights(tmp_path, target_name, compression, levels, op_type):
    """iOS16 constexpr_affine_dequantize / constexpr_lut_to_dense (bit-packed uint8) and iOS18
    constexpr_blockwise_shift_scale / constexpr_lut_to_dense (sub-byte, grouped) decode to the
    original weight, so the layer output equals x @ W.T."""
    import coremltools.optimize.coreml as cto

    weight = on_grid_weight(41, (8, 16), levels)
    config = cto.OptimizationConfig(global_config=COMPRESSIONS[compression](cto))
    compress = (lambda c, m: c.palettize_weights(m, config)) if compression.startswith("palette") else \
        (lambda c, m: c.linear_quantize_weights(m, config))
    program, x, out = compressed_linear(tmp_path, weight, compress, getattr(ct.target, target_name))
    assert [op.type for op in program.program.decompressed] == [op_type]
    np.testing.assert_allclose(out, x.astype(np.float64) @ weight.T.astype(np.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target_name", ["iOS16", "iOS18"])
def test_sparse_weights_decompress(tmp_path, target_name):
    import coremltools.optimize.coreml as cto

    weight = rand(8, 16, seed=42)
    weight[np.abs(weight) < 0.8] = 0.0
    config = cto.OptimizationConfig(global_config=cto.OpThresholdPrunerConfig(threshold=1e-3, weight_threshold=0,
                                                                              minimum_sparsity_percentile=0.1))
    program, x, out = compressed_linear(tmp_path, weight, lambda c, m: c.prune_weights(m, config),
                                        getattr(ct.target, target_name))
    assert [op.type for op in program.program.decompressed] == ["constexpr_sparse_to_dense"]
    np.testing.assert_allclose(out, x.astype(np.float64) @ weight.T.astype(np.float64), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- image inputs and errors


def test_image_input_applies_the_programs_scale_and_bias(tmp_path):
    from PIL import Image

    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    exported = torch.export.export(conv, (torch.rand(1, 3, 8, 8),)).run_decompositions({})
    model = ct.convert(exported, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32,
                       inputs=[ct.ImageType(name="image", shape=(1, 3, 8, 8), scale=1 / 64, bias=[-1.0, -2.0, 0.5],
                                            color_layout=ct.colorlayout.BGR)])
    path = tmp_path / "image.mlpackage"
    model.save(str(path))
    program = MilProgram(path)
    rgb = np.random.default_rng(43).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = program.predict({"image": Image.fromarray(rgb)})[program.output_names[0]]
    bgr = rgb[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    scaled = bgr / 64 + np.array([-1.0, -2.0, 0.5], np.float32).reshape(1, 3, 1, 1)
    with torch.no_grad():
        expected = conv(torch.from_numpy(scaled)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # the same tensor given directly as (1, 3, H, W) BGR 0-255 values
    np.testing.assert_allclose(program.predict({"image": bgr})[program.output_names[0]], expected, atol=1e-5)
    with pytest.raises(MilError, match="8x8 image"):
        program.predict({"image": Image.fromarray(rgb).resize((4, 4))})


def test_unknown_op_is_a_clear_error_at_load(tmp_path):
    x = rand(2, 3, seed=44)
    with pytest.raises(UnsupportedOpError, match=r"op 'cumsum' named 'running_total' \(operation #\d+ of main\)"):
        build_package(tmp_path, lambda x: mb.relu(x=mb.cumsum(x=x, axis=1, name="running_total")), {"x": x})
    assert issubclass(UnsupportedOpError, TinySamError)


def test_bad_inputs_and_packages_are_one_line_errors(tmp_path):
    x = rand(2, 3, seed=45)
    program = build_package(tmp_path, lambda x: mb.relu(x=x), {"x": x})
    with pytest.raises(MilError, match=r"input 'x' has shape \[3, 2\]"):
        program.predict({"x": x.T})
    with pytest.raises(MilError, match="missing: x; unknown: y"):
        program.predict({"y": x})
    with pytest.raises(MilError, match="numeric array"):
        program.predict({"x": "not an array"})
    with pytest.raises(MilError, match="not found"):
        MilProgram(tmp_path / "missing.mlpackage")
    (tmp_path / "junk.mlpackage").mkdir()
    with pytest.raises(MilError, match="not a readable CoreML package"):
        MilProgram(tmp_path / "junk.mlpackage")
