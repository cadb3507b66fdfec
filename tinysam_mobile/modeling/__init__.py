from .tinysam import DecoderModule, EncoderModule, TinySam, TinySamConfig

__all__ = ["TinySam", "TinySamConfig", "EncoderModule", "DecoderModule"]
