"""Procedurally generated scenes with exact instance masks (training, tests, calibration, benchmarks)."""

from .scenes import Scene, SceneConfig, generate_scene

__all__ = ["Scene", "SceneConfig", "generate_scene"]
