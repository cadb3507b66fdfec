"""Plain options for calibration, passed to the pure functions of capture, search and report."""

from dataclasses import dataclass


@dataclass(frozen=True)
class CalibrationConfig:
    bits: int = 8                 # weights and activations (TinySAM: W8A8; W6A6 also studied)
    num_images: int = 8           # the paper's calibration set size
    prompts_per_image: int = 4    # each prompt is decoded twice: without and with its own mask as mask_input
    num_points: int = 4           # decoder point count during calibration (prompts padded with label -1)
    candidates: int = 100         # grid of scales alpha * max|x| / 2^(bits-1), alpha in [alpha_min, alpha_max]
    alpha_min: float = 0.01
    alpha_max: float = 1.2
    rounds: int = 3               # alternations between the two operands of each op
    # Samples kept per op over the whole calibration set (they bound the search's cost, not its quality
    # much: each candidate is scored on these).
    rows_per_op: int = 256        # linear input rows (tokens)
    windows_per_op: int = 4       # conv / deconv output windows of crop_size x crop_size
    crop_size: int = 8
    entries_per_op: int = 8       # matmul batch entries (attention windows, prompts)
    seed: int = 0

    def per_image(self, total: int) -> int:
        return max(1, -(-total // self.num_images))

    def __post_init__(self) -> None:
        if self.bits < 2 or self.bits > 8:
            raise ValueError(f"bits must be between 2 and 8, got {self.bits}")
        if not 0 < self.alpha_min < self.alpha_max:
            raise ValueError("need 0 < alpha_min < alpha_max")
