import Foundation

// Mirror of tinysam_mobile/utils/transforms.py (and Transforms.kt): longest-side resize, normalise,
// pad; coordinates; mask upsampling.

public let pixelMean: [Float] = [123.675, 116.28, 103.53]
public let pixelStd: [Float] = [58.395, 57.12, 57.375]
public let maskThreshold: Float = 0.0

/// Height and width of an image (or of the image inside the padded square).
public struct Size: Equatable {
    public let height: Int
    public let width: Int
    public init(height: Int, width: Int) { self.height = height; self.width = width }
}

/// The encoder input: (1, 3, side, side) planar float32, and the size of the image inside it.
public struct EncoderInput {
    public let side: Int
    public let tensor: [Float]
    public let inputSize: Size
}

/// (new_h, new_w) with the longest side = target, rounding as SAM does: int(old * scale + 0.5).
public func resizedShape(height: Int, width: Int, target: Int) -> Size {
    let scale = Double(target) / Double(max(height, width))
    return Size(height: Int(Double(height) * scale + 0.5), width: Int(Double(width) * scale + 0.5))
}

public func resizeLongestSide(_ image: RgbImage, target: Int) -> RgbImage {
    let size = resizedShape(height: image.height, width: image.width, target: target)
    return PilBilinear.resize(image, width: size.width, height: size.height)
}

/// Resized RGB -> (1, 3, target, target): (x - mean) / std in float32, zeros bottom/right.
public func normalizeAndPad(_ resized: RgbImage, target: Int) -> [Float] {
    var out = [Float](repeating: 0, count: 3 * target * target)
    for c in 0..<3 {
        for y in 0..<resized.height {
            for x in 0..<resized.width {
                out[(c * target + y) * target + x] = (Float(resized.value(x, y, c)) - pixelMean[c]) / pixelStd[c]
            }
        }
    }
    return out
}

/// Refuse an image whose short side would shrink to 0 pixels at `target` (Python's preprocess does).
public func checkResizable(_ image: RgbImage, target: Int) throws {
    let size = resizedShape(height: image.height, width: image.width, target: target)
    if min(size.height, size.width) == 0 {
        throw ImageError.tooElongated(width: image.width, height: image.height, target: target)
    }
}

public func preprocess(_ image: RgbImage, target: Int) throws -> EncoderInput {
    try checkResizable(image, target: target)
    let resized = resizeLongestSide(image, target: target)
    return EncoderInput(side: target, tensor: normalizeAndPad(resized, target: target),
                        inputSize: Size(height: resized.height, width: resized.width))
}

/// (x, y) pairs in original pixels -> the resized frame; float32 times a scale rounded to float32 (numpy).
public func applyCoords(_ coords: [Float], originalSize: Size, target: Int) -> [Float] {
    let newSize = resizedShape(height: originalSize.height, width: originalSize.width, target: target)
    let sx = Float(Double(newSize.width) / Double(originalSize.width))
    let sy = Float(Double(newSize.height) / Double(originalSize.height))
    return coords.enumerated().map { i, v in i % 2 == 0 ? v * sx : v * sy }
}

/// torch's bilinear interpolation (align_corners=False) along one axis, in float like its CPU kernel.
private struct LinearAxis {
    var index0: [Int], index1: [Int], weight0: [Float], weight1: [Float]

    init(inSize: Int, outSize: Int, keep: Int) {
        index0 = []; index1 = []; weight0 = []; weight1 = []
        let scale = Float(inSize) / Float(outSize)
        for i in 0..<keep {
            let source = max(scale * (Float(i) + 0.5) - 0.5, 0)
            let index = min(Int(source.rounded(.down)), inSize - 1)
            let lambda = min(max(source - Float(index), 0), 1)
            index0.append(index)
            index1.append(index < inSize - 1 ? index + 1 : index)
            weight0.append(1 - lambda)
            weight1.append(lambda)
        }
    }
}

/// F.interpolate(mode="bilinear", align_corners=False) from the top-left (inH, inW) of a plane `stride`
/// wide at src[offset] to (outH, outW), keeping only the top-left (keepH, keepW): a crop costs nothing.
public func bilinear(_ src: [Float], offset: Int, stride: Int, inH: Int, inW: Int, outH: Int, outW: Int,
                     keepH: Int? = nil, keepW: Int? = nil) -> [Float] {
    let keepH = keepH ?? outH, keepW = keepW ?? outW
    let ys = LinearAxis(inSize: inH, outSize: outH, keep: keepH)
    let xs = LinearAxis(inSize: inW, outSize: outW, keep: keepW)
    var out = [Float](repeating: 0, count: keepH * keepW)
    for y in 0..<keepH {
        let row0 = offset + ys.index0[y] * stride, row1 = offset + ys.index1[y] * stride
        for x in 0..<keepW {
            let x0 = xs.index0[x], x1 = xs.index1[x]
            // Separate multiply and add (no fused multiply-add), in torch's order.
            let top: Float = src[row0 + x0] * xs.weight0[x] + src[row0 + x1] * xs.weight1[x]
            let bottom: Float = src[row1 + x0] * xs.weight0[x] + src[row1 + x1] * xs.weight1[x]
            out[y * keepW + x] = top * ys.weight0[y] + bottom * ys.weight1[y]
        }
    }
    return out
}

/// Low-res logits of one mask -> logits at the original size: bilinear to the padded square, crop, bilinear.
public func upscaleLogits(_ lowRes: [Float], offset: Int, lowResSide: Int, inputSize: Size, originalSize: Size,
                          target: Int) -> [Float] {
    let square = bilinear(lowRes, offset: offset, stride: lowResSide, inH: lowResSide, inW: lowResSide,
                          outH: target, outW: target, keepH: inputSize.height, keepW: inputSize.width)
    return bilinear(square, offset: 0, stride: inputSize.width, inH: inputSize.height, inW: inputSize.width,
                    outH: originalSize.height, outW: originalSize.width)
}

public func threshold(_ logits: [Float]) -> [Bool] { logits.map { $0 > maskThreshold } }
