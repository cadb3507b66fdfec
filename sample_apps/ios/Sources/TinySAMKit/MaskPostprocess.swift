// Mirror of TinySamPredictor.predict after the decoder (and MaskPostprocess.kt): best-mask choice,
// upscaling, threshold. The decoder returns 3 masks (TinySAM mask tokens 1..3) and their predicted IoU.

/// Index of the highest predicted IoU; the first one on ties (numpy's argmax).
public func bestMaskIndex(_ iou: [Float]) -> Int {
    var best = 0
    for i in iou.indices.dropFirst() where iou[i] > iou[best] { best = i }
    return best
}

/// Decoder output: maskCount x side x side low-res logits and maskCount IoU predictions.
public struct DecoderOutput {
    public let lowResLogits: [Float]
    public let iou: [Float]
    public let lowResSide: Int
    public init(lowResLogits: [Float], iou: [Float], lowResSide: Int) {
        self.lowResLogits = lowResLogits; self.iou = iou; self.lowResSide = lowResSide
    }
    public var maskCount: Int { iou.count }

    /// Logits of mask m at the original image size.
    public func upscaled(_ m: Int, inputSize: Size, originalSize: Size, target: Int) -> [Float] {
        upscaleLogits(lowResLogits, offset: m * lowResSide * lowResSide, lowResSide: lowResSide,
                      inputSize: inputSize, originalSize: originalSize, target: target)
    }

    /// Boolean mask m at the original image size (logit > 0).
    public func mask(_ m: Int, inputSize: Size, originalSize: Size, target: Int) -> [Bool] {
        threshold(upscaled(m, inputSize: inputSize, originalSize: originalSize, target: target))
    }
}
