"""Capture what the scale search needs for every conv, deconv, linear and matmul of TinySAM.

For each op, on a sample of its positions: the FP inputs (operands) and the squared gradient of the
task loss with respect to its output. The task loss is the KL divergence between quantized and FP
outputs (masks as per-pixel Bernoulli logits, IoU predictions as Bernoulli probabilities). At the FP
point that KL has zero gradient but its Hessian is the Fisher information, so the gradient is taken
of the log-likelihood of labels sampled from the FP model itself: E[g^2] is then the diagonal of the
Gauss-Newton Hessian that PTQ4ViT's Hessian-guided distance approximates with squared gradients.

Sampling keeps the search cheap on a CPU: linear layers keep token rows, convs keep small output
windows with their input receptive field, matmuls keep batch entries (windows, prompts) and, when
huge, rows of A / columns of B. Each kept output position depends only on the kept operands.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.common import MatMul
from ..modeling.tinysam import TinySam
from .config import CalibrationConfig
from .dataset import PromptedImage

GELU_MIN = -0.16997124254703522  # min over x of x * Phi(x): the post-GELU negative range
UNUSED_MODULES = ("image_encoder.head",)  # TinyViT's ImageNet classifier: never executed
MAX_MATMUL_SIDE = 1024  # A rows / B columns kept per matmul entry
HEAD_AXIS = 1  # matmul operands (B, heads, N, C)
MIN_SCALE = 1e-8  # for operands that are all zero on the calibration set


def op_kind(module: nn.Module) -> "str | None":
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.ConvTranspose2d):
        return "deconv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, MatMul):
        return "matmul"
    return None


def quantizable_ops(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """{module path: (kind, module)} of every op TinySAM quantizes."""
    return {name: (op_kind(m), m) for name, m in model.named_modules()
            if op_kind(m) is not None and name not in UNUSED_MODULES}


@dataclass
class OpData:
    """Sampled operands and squared output gradients of one op, over all calibration passes."""

    kind: str
    module: nn.Module
    operands: list[list[torch.Tensor]] = field(default_factory=list)  # per pass: [x] or [a, b]
    grad2: list[torch.Tensor] = field(default_factory=list)           # per pass, shaped like the output
    post_gelu: bool = False     # input produced by a GELU (twin-uniform candidate)
    post_softmax: bool = False  # matmul operand a is a softmax (rows sum to 1)
    weight_grad2: Optional[torch.Tensor] = None  # conv / deconv / linear: squared weight gradients, summed
    # Per operand, over the whole tensors of every pass (not only the sampled positions): max |x| and max x,
    # per head for 4-D matmul operands (group_amax). The scales' alpha = 1 is this range.
    whole_amax: list[torch.Tensor] = field(default_factory=list)
    whole_max: list[torch.Tensor] = field(default_factory=list)

    def cat(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        return [torch.cat(parts) for parts in zip(*self.operands)], torch.cat(self.grad2)

    def record_range(self, operands: list[torch.Tensor]) -> None:
        heads = self.kind == "matmul"
        amax = [group_amax(x, heads) for x in operands]
        high = [group_amax(x.clamp_min(0), heads) for x in operands]
        if self.whole_amax:
            amax = [torch.maximum(old, new) for old, new in zip(self.whole_amax, amax)]
            high = [torch.maximum(old, new) for old, new in zip(self.whole_max, high)]
        self.whole_amax, self.whole_max = amax, high

    def amax(self, index: int, positive: bool = False) -> torch.Tensor:
        """max |x| (positive: max x) of operand `index` over everything calibration ran, (groups,); from the
        samples where no whole range was recorded (ops built from given operands, e.g. in tests)."""
        if self.whole_amax:
            return (self.whole_max if positive else self.whole_amax)[index]
        x = self.cat()[0][index]
        return group_amax(x.clamp_min(0) if positive else x, self.kind == "matmul")


def group_amax(x: torch.Tensor, heads: bool) -> torch.Tensor:
    """max |x| per head (HEAD_AXIS) of a 4-D matmul operand (heads), else per tensor as (1,); never below
    MIN_SCALE."""
    if not heads or x.dim() != 4:
        return x.abs().amax().reshape(1).clamp_min(MIN_SCALE)
    return x.abs().amax(dim=[d for d in range(4) if d != HEAD_AXIS]).clamp_min(MIN_SCALE)


def run_op(kind: str, module: nn.Module, operands: list[torch.Tensor], weight: "torch.Tensor | None" = None
           ) -> torch.Tensor:
    """The op on (sampled) operands, without padding: conv crops already hold their padding."""
    if kind == "matmul":
        return operands[0] @ operands[1]
    weight = module.weight if weight is None else weight
    if kind == "linear":
        return F.linear(operands[0], weight, module.bias)
    if kind == "conv":
        return F.conv2d(operands[0], weight, module.bias, module.stride, 0, module.dilation, module.groups)
    return F.conv_transpose2d(operands[0], weight, module.bias, module.stride, 0, 0, module.groups, module.dilation)


def _conv_sample(module: nn.Module, kind: str, x: torch.Tensor, out_hw: tuple[int, int],
                 config: CalibrationConfig, gen: torch.Generator) -> tuple[torch.Tensor, Callable]:
    """Input crops (padding applied) whose op output is a window of the real output, and the
    function that cuts the same windows out of an output-shaped tensor."""
    oh, ow = out_hw
    size = min(config.crop_size, oh, ow)
    count = config.per_image(config.windows_per_op)
    corners = list(zip(torch.randint(0, oh - size + 1, (count,), generator=gen).tolist(),
                       torch.randint(0, ow - size + 1, (count,), generator=gen).tolist()))
    s = module.stride[0]
    if kind == "deconv":  # SAM's upscaling: kernel == stride, no padding, so windows map one to one
        if module.kernel_size != module.stride or module.padding != (0, 0):
            raise NotImplementedError("deconv sampling assumes kernel == stride and no padding")
        corners = [(y - y % s, x - x % s) for y, x in corners]
        size -= size % s
        crops = [x[:, :, y // s:(y + size) // s, c // s:(c + size) // s] for y, c in corners]
    else:
        p, k = module.padding[0], module.kernel_size[0]
        padded = F.pad(x, (p, p, p, p))
        span = (size - 1) * s + k
        crops = [padded[:, :, y * s:y * s + span, c * s:c * s + span] for y, c in corners]

    def take_output(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[:, :, y:y + size, c:c + size] for y, c in corners])

    return torch.cat(crops), take_output


class Recorder:
    """Forward hooks that sample each op's operands and register gradient hooks on its output."""

    def __init__(self, model: nn.Module, config: CalibrationConfig) -> None:
        self.config = config
        self.ops = {name: OpData(kind, module) for name, (kind, module) in quantizable_ops(model).items()}
        self.gen = torch.Generator().manual_seed(config.seed)
        self.gelu_outputs: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._on_gelu) for m in model.modules() if isinstance(m, nn.GELU)]
        for name, data in self.ops.items():
            self.handles.append(data.module.register_forward_hook(self._make_hook(name)))

    def _on_gelu(self, module, inputs, output) -> None:
        if output.requires_grad:  # kept alive for the pass, so identity checks are exact
            self.gelu_outputs.append(output)

    def _rows(self, n: int, keep: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.gen)[:keep].sort().values

    def _make_hook(self, name: str):
        data = self.ops[name]

        def hook(module, inputs, output):
            if not output.requires_grad:
                return
            x = inputs[0]
            if data.kind != "matmul" and any(x is t for t in self.gelu_outputs):
                data.post_gelu = True
            if data.kind == "linear":
                flat = x.reshape(-1, x.shape[-1])
                rows = self._rows(flat.shape[0], self.config.per_image(self.config.rows_per_op))
                operands, take_output = [flat[rows]], lambda g: g.reshape(-1, g.shape[-1])[rows]
            elif data.kind in ("conv", "deconv"):
                crops, take_output = _conv_sample(module, data.kind, x, output.shape[-2:], self.config, self.gen)
                operands = [crops]
            else:
                a, b = inputs
                if a.min() >= 0 and torch.allclose(a.sum(-1), torch.ones(()), atol=1e-4):
                    data.post_softmax = True
                batch = self._rows(a.shape[0], self.config.per_image(self.config.entries_per_op))
                rows = self._rows(a.shape[-2], MAX_MATMUL_SIDE)
                cols = self._rows(b.shape[-1], MAX_MATMUL_SIDE)
                operands = [a[batch][..., rows, :], b[batch][..., cols]]
                take_output = lambda g: g[batch][..., rows, :][..., cols]  # noqa: E731
            data.operands.append([o.detach().clone() for o in operands])
            data.record_range([t.detach() for t in (inputs if data.kind == "matmul" else inputs[:1])])
            output.register_hook(lambda g: data.grad2.append(take_output(g).detach().pow(2)))

        return hook

    def end_pass(self) -> None:
        self.gelu_outputs.clear()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def fisher_loss(logits: torch.Tensor, iou: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Log-likelihood loss of labels sampled from the model's own outputs (see the module docstring)."""
    with torch.no_grad():
        mask_labels = torch.bernoulli(torch.sigmoid(logits), generator=gen)
        iou_p = iou.clamp(0.01, 0.99)
        iou_labels = torch.bernoulli(iou_p, generator=gen)
    mask_term = F.binary_cross_entropy_with_logits(logits, mask_labels)
    iou_term = F.binary_cross_entropy(iou.clamp(0.01, 0.99), iou_labels)
    return mask_term + iou_term


def capture(model: TinySam, samples: list[PromptedImage], config: CalibrationConfig,
            progress: Callable[[], None] = lambda: None) -> dict[str, OpData]:
    """Run the FP model over the calibration samples (one forward and backward per image)."""
    model = model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # gradients flow from the inputs, and to the quantized layers' weights only
        p.requires_grad_(False)
    weights = {name: module.weight for name, (kind, module) in quantizable_ops(model).items() if kind != "matmul"}
    for weight in weights.values():
        weight.requires_grad_(True)
    recorder = Recorder(model, config)
    gen = torch.Generator().manual_seed(config.seed)
    try:
        for sample in samples:
            prompts = sample.coords.shape[0]
            side = model.config.low_res_size
            with torch.no_grad():
                embedding = model.encode(sample.image)
                first, _ = model.decode(embedding, sample.coords, sample.labels,
                                        torch.zeros(prompts, 1, side, side), torch.zeros(prompts))
            # Each prompt twice: alone, then refined with its first mask (calibrates the mask path too).
            coords = sample.coords.repeat(2, 1, 1).requires_grad_(True)
            mask_input = torch.cat([torch.zeros(prompts, 1, side, side), first[:, :1]]).requires_grad_(True)
            has_mask = torch.cat([torch.zeros(prompts), torch.ones(prompts)])
            with torch.enable_grad():
                image = sample.image.clone().requires_grad_(True)
                logits, iou = model.decode(model.encode(image), coords, sample.labels.repeat(2, 1),
                                           mask_input, has_mask)
                fisher_loss(logits, iou, gen).backward()
            recorder.end_pass()
            for name, weight in weights.items():
                if weight.grad is not None:
                    data = recorder.ops[name]
                    grad2 = weight.grad.detach().pow(2)
                    data.weight_grad2 = grad2 if data.weight_grad2 is None else data.weight_grad2 + grad2
                    weight.grad = None
            progress()
    finally:
        recorder.remove()
        for weight in weights.values():
            weight.requires_grad_(False)
            weight.grad = None
        for p in params:
            p.requires_grad_(True)
    return {name: data for name, data in recorder.ops.items() if data.operands}
