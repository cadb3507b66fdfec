"""The scales file: every quantized op of TinySAM with its weight and activation quantizers.

One file, ``NAME.safetensors``, holds the tensors (scales, offsets) and, in its metadata under
``tinysam_scales``, a JSON description of every op; ``NAME.json`` beside it is the same JSON,
pretty-printed for people (it is written, never read). Layout of the JSON::

    {"format_version": 1, "checkpoint_sha256": "...", "method": "tinysam-ptq" | "minmax" | "q-tinysam",
     "seed": 0, "ops": {
        "image_encoder.layers.1.blocks.0.attn.qkv": {"kind": "linear",
            "weight": {"scheme": "uniform", "bits": 8, "granularity": "tensor", "axis": null,
                       "tensors": ["image_encoder.layers.1.blocks.0.attn.qkv.weight.scale"], ...},
            "input":  {"scheme": "uniform", "bits": 8, "granularity": "tensor", ...}},
        "image_encoder.layers.1.blocks.0.attn.qk_matmul": {"kind": "matmul", "a": {...}, "b": {...}}}}

Op names are module paths of ``tinysam_mobile.modeling.TinySam`` (kinds: conv, deconv, linear, matmul;
matmuls are the ``MatMul`` modules ``qk_matmul``, ``av_matmul`` and ``mask_matmul``). Conv, deconv and
linear ops have a ``weight`` and an ``input`` quantizer; a matmul has ``a`` and ``b`` (its operands).
Biases, adds, norms and softmax stay in float (as in TinySAM). Every quantizer is symmetric with
qmax = 2^(bits-1), round half to even:

- ``uniform``: q = clamp(round((x - offset) / scale), -qmax, qmax - 1); x' = q * scale + offset.
  ``offset`` is absent (zero) except for Q-TinySAM's conv activations (its ``a_bias``).
- ``twin_softmax`` (post-softmax matmul operand, values in [0, 1]): x < split uses ``scale``,
  x >= split uses ``scale_high`` (= 1 / (qmax - 1)); codes 0..qmax-1 in each region.
- ``twin_gelu`` (input of layers fed by GELU): x < 0 uses ``scale`` (codes -qmax..0), x >= 0 uses
  ``scale_high`` (codes 0..qmax-1).

Scale tensors and granularity. A weight scale has the weight's rank; each of its dims is 1 or divides
the weight's dim, and an element uses the scale of its block (``expand_blocks``): conv (O, 1, 1, 1) =
channel-wise, deconv (1, O, 1, 1) (ConvTranspose weights are (I, O, k, k)), linear (1, 1) = layer-wise,
Q-TinySAM linear (n_V, n_H) = block-wise. An activation scale is 1-D, (G,), running along ``axis`` of
the activation (G = 1: per tensor; matmul operands (B, heads, N, C): axis 1, G = heads = head-wise).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..errors import TinySamError
from ..utils.files import atomic_path

FORMAT_VERSION = 1
METADATA_KEY = "tinysam_scales"
KINDS = ("conv", "deconv", "linear", "matmul")
SCHEMES = ("uniform", "twin_softmax", "twin_gelu")
OPERANDS = {"conv": ("weight", "input"), "deconv": ("weight", "input"), "linear": ("weight", "input"),
            "matmul": ("a", "b")}
TENSOR_FIELDS = ("scale", "scale_high", "offset")
SENSITIVITY_PREFIX = "sensitivity/"


class ScalesError(TinySamError):
    pass


@dataclass
class Quantizer:
    """One operand's quantizer. scale: weight-rank block scales, or (G,) along `axis` for activations."""

    scheme: str
    bits: int
    scale: torch.Tensor
    granularity: str = "tensor"   # tensor | channel | head | block (descriptive; the shape is normative)
    axis: Optional[int] = None    # activations: the dim the (G,) scale runs along
    scale_high: Optional[torch.Tensor] = None  # twin schemes: the second region's scale
    offset: Optional[torch.Tensor] = None      # uniform with a float zero point (Q-TinySAM conv inputs)
    split: Optional[float] = None              # twin_softmax: where the high region starts

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1)

    def covered_range(self) -> tuple[float, float]:
        """(min, max) of the values this quantizer can represent, over all its groups."""
        q = self.qmax
        if self.scheme == "uniform":
            offset = self.offset if self.offset is not None else torch.zeros(())
            return float((-q * self.scale + offset).min()), float(((q - 1) * self.scale + offset).max())
        if self.scheme == "twin_softmax":
            return 0.0, float((q - 1) * self.scale_high.max())
        return float(-q * self.scale.max()), float((q - 1) * self.scale_high.max())


@dataclass
class OpScales:
    kind: str
    quantizers: dict[str, Quantizer]  # weight/input, or a/b for matmuls


@dataclass
class ScalesFile:
    checkpoint_sha256: str
    method: str
    ops: dict[str, OpScales] = field(default_factory=dict)
    seed: Optional[int] = None
    # Conv / deconv / linear weights: squared task-loss gradients (the Fisher diagonal the scale search
    # also uses), shaped like the weight; what sensitivity-weighted palettes weigh each weight by.
    weight_sensitivity: dict[str, torch.Tensor] = field(default_factory=dict)

    def op(self, module_name: str) -> OpScales:
        if module_name not in self.ops:
            raise ScalesError(f"the scales file has no op {module_name!r}")
        return self.ops[module_name]

    def weight_quantizer(self, module_name: str) -> Quantizer:
        return self.op(module_name).quantizers["weight"]

    def weight_scale(self, module_name: str) -> torch.Tensor:
        """The stored block scale tensor (weight rank; see the module docstring)."""
        return self.weight_quantizer(module_name).scale

    def activation_quantizer(self, module_name: str, operand: str = "input") -> Quantizer:
        quantizers = self.op(module_name).quantizers
        if operand not in quantizers or operand == "weight":
            raise ScalesError(f"op {module_name!r} has no activation operand {operand!r}")
        return quantizers[operand]

    def activation_range(self, module_name: str, operand: str = "input") -> tuple[float, float]:
        """(min, max) a per-tensor int8 format needs to cover what TinySAM's quantizer covers."""
        return self.activation_quantizer(module_name, operand).covered_range()

    @property
    def bits(self) -> dict[str, int]:
        """The bit widths used, e.g. {'weight': 8, 'activation': 8}."""
        w = {q.bits for o in self.ops.values() for n, q in o.quantizers.items() if n == "weight"}
        a = {q.bits for o in self.ops.values() for n, q in o.quantizers.items() if n != "weight"}
        return {"weight": max(w, default=0), "activation": max(a, default=0)}


def _quantizer_json(name: str, q: Quantizer) -> dict:
    record = {"scheme": q.scheme, "bits": q.bits, "granularity": q.granularity, "axis": q.axis,
              "split": q.split, "scale_shape": list(q.scale.shape),
              "scale_min": float(q.scale.min()), "scale_max": float(q.scale.max())}
    record["tensors"] = {f: f"{name}.{f}" for f in TENSOR_FIELDS if getattr(q, f) is not None}
    return record


def summary(scales: ScalesFile) -> dict:
    """The JSON description stored in the file's metadata and written beside it."""
    ops = {}
    for op_name, op in scales.ops.items():
        ops[op_name] = {"kind": op.kind, **{operand: _quantizer_json(f"{op_name}.{operand}", q)
                                            for operand, q in op.quantizers.items()}}
    return {"format_version": FORMAT_VERSION, "checkpoint_sha256": scales.checkpoint_sha256,
            "method": scales.method, "seed": scales.seed, "bits": scales.bits, "num_ops": len(ops), "ops": ops,
            "weight_sensitivity": {name: SENSITIVITY_PREFIX + name for name in scales.weight_sensitivity}}


def json_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def save_scales(scales: ScalesFile, path: "str | Path") -> Path:
    """Write NAME.safetensors (tensors + JSON metadata) and NAME.json, each whole or not at all."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ScalesError(f"{path}: the scales file must end in .safetensors")
    description = summary(scales)
    tensors = {}
    for op_name, op in scales.ops.items():
        for operand, q in op.quantizers.items():
            for f in TENSOR_FIELDS:
                if getattr(q, f) is not None:
                    tensors[f"{op_name}.{operand}.{f}"] = getattr(q, f).detach().float().contiguous()
    for op_name, sensitivity in scales.weight_sensitivity.items():
        # bfloat16: fp32's range (squared gradients reach 1e-20) at half the bytes; only ratios matter.
        tensors[SENSITIVITY_PREFIX + op_name] = sensitivity.detach().to(torch.bfloat16).contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(description)})
    with atomic_path(json_path(path)) as tmp:
        tmp.write_text(json.dumps(description, indent=1) + "\n")
    return path


def load_scales(path: "str | Path") -> ScalesFile:
    """Read a scales file written by save_scales; ScalesError (one line) when it is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ScalesError(f"scales file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ScalesError(f"{path}: not a readable safetensors file ({exc})") from None
    if METADATA_KEY not in metadata:
        raise ScalesError(f"{path}: no TinySAM scales description; write it with 'tinysam-mobile calibrate'")
    description = json.loads(metadata[METADATA_KEY])
    if description.get("format_version") != FORMAT_VERSION:
        raise ScalesError(f"{path}: scales format {description.get('format_version')!r}, this tool reads {FORMAT_VERSION}")
    scales = ScalesFile(description["checkpoint_sha256"], description["method"], seed=description.get("seed"))
    for op_name, record in description["ops"].items():
        if record["kind"] not in KINDS:
            raise ScalesError(f"{path}: op {op_name} has unknown kind {record['kind']!r}")
        quantizers = {}
        for operand in OPERANDS[record["kind"]]:
            q = record[operand]
            if q["scheme"] not in SCHEMES:
                raise ScalesError(f"{path}: {op_name}.{operand} has unknown scheme {q['scheme']!r}")
            try:
                loaded = {f: tensors[key] for f, key in q["tensors"].items()}
            except KeyError as exc:
                raise ScalesError(f"{path}: tensor {exc} is missing") from None
            quantizers[operand] = Quantizer(q["scheme"], q["bits"], granularity=q["granularity"], axis=q["axis"],
                                            split=q["split"], **loaded)
        scales.ops[op_name] = OpScales(record["kind"], quantizers)
    for op_name, key in description.get("weight_sensitivity", {}).items():  # absent in older files
        if key not in tensors:
            raise ScalesError(f"{path}: tensor {key!r} is missing")
        scales.weight_sensitivity[op_name] = tensors[key].float()
    return scales


def read_scales(path: "str | Path", checkpoint_sha256: str) -> ScalesFile:
    """load_scales, refusing a file calibrated for another checkpoint (what the converters read)."""
    scales = load_scales(path)
    if scales.checkpoint_sha256 != checkpoint_sha256:
        raise TinySamError(f"{path} was calibrated for checkpoint {scales.checkpoint_sha256[:16]}, "
                           f"not for the one being converted ({checkpoint_sha256[:16]})")
    return scales
