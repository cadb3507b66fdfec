"""The fidelity report: every target and precision of one checkpoint against FP32 PyTorch, as one page."""
