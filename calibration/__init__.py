"""TinySAM post-training quantization: calibration, scale search, Q-TinySAM import."""
