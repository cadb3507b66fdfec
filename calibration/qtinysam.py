"""Import of the official Q-TinySAM checkpoint (tinysam_w8a8.pth) without running its pickle.

That file is a whole pickled nn.Module whose layers are classes of a top-level module named
``quantization_layer`` (InferQuantConv2d, ..., PTQ4ViT's inference quantizers). torch.load would
import and run whatever the pickle names. Here a pickle.Unpickler subclass resolves only an allow-list:
torch's tensor rebuild functions and storage types (storages are read from the zip by
``persistent_load``), OrderedDict / set, and inert stand-ins for the torch.nn, TinySAM and
quantization_layer classes, which only record the state the pickle gives them. Any other global
(os.system, builtins.eval, ...) stops the load before anything runs.

The recorded tree is then mapped to a float TinySam state dict and a scales file (method
"q-tinysam"); quantizers the scales format cannot hold exactly are approximated and listed in notes.
"""

import collections
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .scales import OpScales, Quantizer, ScalesFile

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
TORCH_MODULE_CLASSES = {
    "torch.nn.modules.conv": ("Conv2d", "ConvTranspose2d"),
    "torch.nn.modules.linear": ("Linear", "Identity"),
    "torch.nn.modules.normalization": ("LayerNorm",),
    "torch.nn.modules.batchnorm": ("BatchNorm2d",),
    "torch.nn.modules.activation": ("GELU", "ReLU", "Softmax"),
    "torch.nn.modules.container": ("Sequential", "ModuleList"),
    "torch.nn.modules.sparse": ("Embedding",),
    "torch.nn.modules.dropout": ("Dropout",),
}
QUANT_CLASSES = ("InferQuantConv2d", "InferQuantConvTranspose2d", "InferQuantLinear", "InferQuantLinearPost",
                 "InferQuantMatMul", "InferQuantMatMulPost")
QUANT_MODULES = ("quantization_layer", "quantization_layer.layers")
TINYSAM_CLASSES = {
    "sam": ("Sam",),
    "tiny_vit_sam": ("TinyViT", "Conv2d_BN", "PatchEmbed", "MBConv", "PatchMerging", "ConvLayer", "BasicLayer",
                     "TinyViTBlock", "Attention", "Mlp", "LayerNorm2d", "DropPath"),
    "common": ("MLPBlock", "LayerNorm2d"),
    "prompt_encoder": ("PromptEncoder", "PositionEmbeddingRandom"),
    "mask_decoder": ("MaskDecoder", "MLP"),
    "transformer": ("TwoWayTransformer", "TwoWayAttentionBlock", "Attention"),
}
# The public code runs with ./tinysam on sys.path, so its classes may be pickled as modeling.* too.
TINYSAM_PACKAGES = ("tinysam.modeling", "modeling")
QUANT_BUFFERS = {"a_interval", "a_bias", "w_interval", "a_neg_interval", "A_interval", "B_interval", "split",
                 "n_V", "n_H", "n_a", "crb_rows", "crb_cols", "crb_acts"} | {
    f"{p}_{s}" for p in ("n_G", "n_V", "n_H", "crb_groups", "crb_rows", "crb_cols", "pad_groups", "pad_rows",
                         "pad_cols") for s in "AB"}
MATMUL_NAMES = {"matmul1": "qk_matmul", "matmul2": "av_matmul"}  # PTQ4ViT's attribute names -> ours


class ModuleRecord:
    """Inert stand-in for a pickled module: keeps the state the pickle sets, runs nothing."""

    qualname = "?"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state for {self.qualname}")
        self.state = state


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.Tensor) or backward_hooks:
        raise pickle.UnpicklingError("malformed tensor record")
    return torch.as_strided(storage, size, stride, offset).clone()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor) or backward_hooks:
        raise pickle.UnpicklingError("malformed parameter record")
    return data


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set, ("__builtin__", "set"): set,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }
    allowed.update({("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()})

    def stand_in(module: str, name: str) -> None:
        allowed[(module, name)] = type(name, (ModuleRecord,), {"qualname": f"{module}.{name}"})

    for module, names in TORCH_MODULE_CLASSES.items():
        for name in names:
            stand_in(module, name)
    for module in QUANT_MODULES:
        for name in QUANT_CLASSES:
            stand_in(module, name)
    for package in TINYSAM_PACKAGES:
        for sub, names in TINYSAM_CLASSES.items():
            for name in names:
                stand_in(f"{package}.{sub}", name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-list; storages come from the torch zip archive."""

    ALLOWED = _allowed_globals()

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}") from None

    def persistent_load(self, saved_id: Any) -> torch.Tensor:
        if not (isinstance(saved_id, tuple) and len(saved_id) == 5 and saved_id[0] == "storage"
                and isinstance(saved_id[1], _StorageType)):
            raise pickle.UnpicklingError("unsupported persistent id")
        _, storage_type, key, _location, numel = saved_id
        data = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
        tensor = torch.frombuffer(data, dtype=storage_type.dtype) if data else torch.empty(0, dtype=storage_type.dtype)
        if tensor.numel() != numel:
            raise pickle.UnpicklingError(f"storage {key} holds {tensor.numel()} elements, expected {numel}")
        return tensor


def restricted_load(path: "str | Path") -> Any:
    """Unpickle a torch.save zip archive through RestrictedUnpickler. CheckpointError if refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a torch.save zip archive (the format Q-TinySAM ships in)")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("/data.pkl")]
        with archive.open(pickles[0]) as f:
            try:
                return RestrictedUnpickler(f, archive, prefix).load()
            except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError,
                    RuntimeError) as exc:
                raise CheckpointError(f"{path}: refused or malformed pickle ({exc})") from None


@dataclass
class QTinySamImport:
    state_dict: dict[str, torch.Tensor]
    ops: dict[str, OpScales]
    notes: list[str] = field(default_factory=list)


def _walk(record: ModuleRecord, prefix: str = ""):
    yield prefix, record
    for name, child in record.state.get("_modules", {}).items():
        if child is not None:
            yield from _walk(child, f"{prefix}{name}.")


def _buffer(state: dict, name: str) -> torch.Tensor:
    try:
        return state["_buffers"][name].float()
    except (KeyError, AttributeError):
        raise CheckpointError(f"quantizer buffer {name!r} missing") from None


def _conv_quantizers(state: dict) -> dict[str, Quantizer]:
    weight = state["_parameters"]["weight"]
    w_interval = _buffer(state, "w_interval")
    scale = w_interval.reshape(-1, *([1] * (weight.dim() - 1))) if w_interval.numel() > 1 else \
        w_interval.reshape([1] * weight.dim())
    a_interval, a_bias = _buffer(state, "a_interval").reshape(-1), _buffer(state, "a_bias").reshape(-1)
    return {"weight": Quantizer("uniform", state["w_bit"], scale, "channel" if scale.numel() > 1 else "tensor"),
            "input": Quantizer("uniform", state["a_bit"], a_interval[:1], offset=a_bias[:1])}


def _linear_quantizers(state: dict, post_gelu: bool) -> dict[str, Quantizer]:
    n_v, n_h = int(_buffer(state, "n_V")), int(_buffer(state, "n_H"))
    w_scale = _buffer(state, "w_interval").reshape(n_v, n_h)
    a_scale = _buffer(state, "a_interval").reshape(-1)
    granularity = "block" if w_scale.numel() > 1 else "tensor"
    weight = Quantizer("uniform", state["w_bit"], w_scale, granularity)
    act_granularity = "block" if a_scale.numel() > 1 else "tensor"
    if post_gelu:
        act = Quantizer("twin_gelu", state["a_bit"], _buffer(state, "a_neg_interval").reshape(1),
                        act_granularity, axis=-1, scale_high=a_scale)
    else:
        act = Quantizer("uniform", state["a_bit"], a_scale, act_granularity, axis=-1)
    return {"weight": weight, "input": act}


def _operand(state: dict, which: str, bits: int, notes: list[str], path: str) -> Quantizer:
    interval = _buffer(state, f"{which}_interval")
    groups = int(_buffer(state, f"n_G_{which}"))
    per_group = interval.reshape(groups, -1).amax(dim=1)
    if per_group.numel() != interval.numel():
        notes.append(f"{path}.{which}: row/column blocks of the matmul interval merged per head (max)")
    return Quantizer("uniform", bits, per_group, "head" if groups > 1 else "tensor", axis=1 if groups > 1 else None)


def _matmul_quantizers(state: dict, post_softmax: bool, notes: list[str], path: str) -> dict[str, Quantizer]:
    b = _operand(state, "B", state["B_bit"], notes, path)
    if post_softmax:
        a_bits = state["A_bit"]
        a = Quantizer("twin_softmax", a_bits, _buffer(state, "A_interval").amax().reshape(1),
                      scale_high=torch.tensor([1.0 / (2 ** (a_bits - 1) - 1)]),
                      split=float(_buffer(state, "split")))
    else:
        a = _operand(state, "A", state["A_bit"], notes, path)
    return {"a": a, "b": b}


def import_qtinysam(path: "str | Path") -> QTinySamImport:
    """Read Q-TinySAM into a float state dict (TinySam's keys) and quantizers per op."""
    root = restricted_load(path)
    if not isinstance(root, ModuleRecord) or not root.qualname.endswith(".Sam"):
        raise CheckpointError(f"{path}: the pickle is not a TinySAM Sam module")
    state_dict: dict[str, torch.Tensor] = {}
    ops: dict[str, OpScales] = {}
    notes: list[str] = []
    for prefix, record in _walk(root):
        state = record.state
        non_persistent = state.get("_non_persistent_buffers_set", set())
        for name, tensor in state.get("_parameters", {}).items():
            if tensor is not None:
                state_dict[prefix + name] = tensor
        for name, tensor in state.get("_buffers", {}).items():
            if tensor is not None and name not in non_persistent and name not in QUANT_BUFFERS:
                state_dict[prefix + name] = tensor
        cls = record.qualname.rsplit(".", 1)[-1]
        if cls not in QUANT_CLASSES:
            continue
        path_name = prefix[:-1]
        if state.get("mode") != "quant_forward":
            notes.append(f"{path_name}: mode {state.get('mode')!r}, left in float")
            continue
        try:
            if cls in ("InferQuantConv2d", "InferQuantConvTranspose2d"):
                kind = "conv" if cls == "InferQuantConv2d" else "deconv"
                ops[path_name] = OpScales(kind, _conv_quantizers(state))
            elif cls in ("InferQuantLinear", "InferQuantLinearPost"):
                ops[path_name] = OpScales("linear", _linear_quantizers(state, cls == "InferQuantLinearPost"))
            else:
                parent, _, leaf = path_name.rpartition(".")
                if leaf not in MATMUL_NAMES:
                    raise CheckpointError(f"{path}: matmul quantizer at {path_name} has no known place in TinySAM")
                ops[f"{parent}.{MATMUL_NAMES[leaf]}"] = OpScales(
                    "matmul", _matmul_quantizers(state, cls == "InferQuantMatMulPost", notes, path_name))
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: unexpected quantizer layout at {path_name} ({exc})") from None
    return QTinySamImport(state_dict, ops, notes)


def qtinysam_scales(imported: QTinySamImport, checkpoint_sha256: str) -> ScalesFile:
    return ScalesFile(checkpoint_sha256, "q-tinysam", dict(imported.ops))
