"""Converters from a TinySAM checkpoint to mobile artifacts (LiteRT, CoreML, ONNX)."""
