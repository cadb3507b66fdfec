package org.tinysam.core

import kotlin.math.floor

/** Mirror of tinysam_mobile/utils/transforms.py: longest-side resize, normalise, pad; coordinates; mask upsampling. */

val PIXEL_MEAN = floatArrayOf(123.675f, 116.28f, 103.53f)
val PIXEL_STD = floatArrayOf(58.395f, 57.12f, 57.375f)
const val MASK_THRESHOLD = 0.0f

/** Height and width of an image (or of the image inside the padded square). */
data class Size(val height: Int, val width: Int)

/**
 * The encoder input and the size of the image inside it: (1, 3, side, side) planar normalised floats
 * from [preprocess], or (1, side, side, 3) RGB pixels from [preprocessPixels].
 */
class EncoderInput(val side: Int, val tensor: FloatArray, val inputSize: Size)

/** (new_h, new_w) with the longest side = target, rounding as SAM does: int(old * scale + 0.5). */
fun resizedShape(height: Int, width: Int, target: Int): Size {
    val scale = target.toDouble() / maxOf(height, width)
    return Size((height * scale + 0.5).toInt(), (width * scale + 0.5).toInt())
}

fun resizeLongestSide(image: RgbImage, target: Int): RgbImage {
    val size = resizedShape(image.height, image.width, target)
    return PilBilinear.resize(image, size.width, size.height)
}

/** Resized RGB -> (1, 3, target, target): (x - mean) / std in float32, zeros bottom/right. */
fun normalizeAndPad(resized: RgbImage, target: Int): FloatArray {
    val out = FloatArray(3 * target * target)
    for (c in 0 until 3) {
        for (y in 0 until resized.height) {
            for (x in 0 until resized.width) {
                out[(c * target + y) * target + x] = (resized.value(x, y, c).toFloat() - PIXEL_MEAN[c]) / PIXEL_STD[c]
            }
        }
    }
    return out
}

/** Refuse an image whose short side would shrink to 0 pixels at [target] (Python's preprocess does). */
fun checkResizable(image: RgbImage, target: Int) {
    val size = resizedShape(image.height, image.width, target)
    if (minOf(size.height, size.width) == 0) throw ImageException.tooElongated(image.width, image.height, target)
}

fun preprocess(image: RgbImage, target: Int): EncoderInput {
    checkResizable(image, target)
    val resized = resizeLongestSide(image, target)
    return EncoderInput(target, normalizeAndPad(resized, target), Size(resized.height, resized.width))
}

/** Resized RGB -> (1, target, target, 3) float32 pixels 0-255, PIXEL_MEAN bottom/right (encoders that normalise inside). */
fun padPixels(resized: RgbImage, target: Int): FloatArray {
    val out = FloatArray(3 * target * target) { PIXEL_MEAN[it % 3] }
    for (y in 0 until resized.height) {
        for (x in 0 until resized.width) {
            for (c in 0 until 3) out[(y * target + x) * 3 + c] = resized.value(x, y, c).toFloat()
        }
    }
    return out
}

fun preprocessPixels(image: RgbImage, target: Int): EncoderInput {
    checkResizable(image, target)
    val resized = resizeLongestSide(image, target)
    return EncoderInput(target, padPixels(resized, target), Size(resized.height, resized.width))
}

/** (x, y) pairs in original pixels -> the resized frame; numpy float32 times a scale cast to float32. */
fun applyCoords(coords: FloatArray, originalSize: Size, target: Int): FloatArray {
    val newSize = resizedShape(originalSize.height, originalSize.width, target)
    val sx = (newSize.width.toDouble() / originalSize.width).toFloat()
    val sy = (newSize.height.toDouble() / originalSize.height).toFloat()
    return FloatArray(coords.size) { i -> if (i % 2 == 0) coords[i] * sx else coords[i] * sy }
}

/** XYXY boxes (4 values each) -> the resized frame. */
fun applyBoxes(boxes: FloatArray, originalSize: Size, target: Int): FloatArray = applyCoords(boxes, originalSize, target)

/**
 * One axis of torch's bilinear interpolation (align_corners=False, half-pixel centres), in float
 * as torch's CPU kernel computes it: source index = scale * (i + 0.5) - 0.5 clamped at 0.
 */
private class LinearAxis(inSize: Int, outSize: Int, keep: Int) {
    val index0 = IntArray(keep)
    val index1 = IntArray(keep)
    val weight0 = FloatArray(keep)
    val weight1 = FloatArray(keep)

    init {
        val scale = inSize.toFloat() / outSize
        for (i in 0 until keep) {
            val source = maxOf(scale * (i.toFloat() + 0.5f) - 0.5f, 0.0f)
            val index = minOf(floor(source).toInt(), inSize - 1)
            val lambda = minOf(maxOf(source - index, 0.0f), 1.0f)
            index0[i] = index
            index1[i] = if (index < inSize - 1) index + 1 else index
            weight0[i] = 1.0f - lambda
            weight1[i] = lambda
        }
    }
}

/**
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False) from the top-left (inH, inW)
 * corner of a plane `stride` wide at src[offset] to (outH, outW), keeping only the top-left
 * (keepH, keepW) of the result: a crop after upsampling costs nothing.
 */
fun bilinear(src: FloatArray, offset: Int, stride: Int, inH: Int, inW: Int, outH: Int, outW: Int,
             keepH: Int = outH, keepW: Int = outW): FloatArray {
    val ys = LinearAxis(inH, outH, keepH)
    val xs = LinearAxis(inW, outW, keepW)
    val out = FloatArray(keepH * keepW)
    for (y in 0 until keepH) {
        val row0 = offset + ys.index0[y] * stride
        val row1 = offset + ys.index1[y] * stride
        for (x in 0 until keepW) {
            val x0 = xs.index0[x]
            val x1 = xs.index1[x]
            val top = src[row0 + x0] * xs.weight0[x] + src[row0 + x1] * xs.weight1[x]
            val bottom = src[row1 + x0] * xs.weight0[x] + src[row1 + x1] * xs.weight1[x]
            out[y * keepW + x] = top * ys.weight0[y] + bottom * ys.weight1[y]
        }
    }
    return out
}

/**
 * Low-res logits of one mask (side x side, at lowRes[offset]) -> logits at the original size:
 * bilinear to the padded square, crop the padding away, bilinear to the original size (SAM's postprocess_masks).
 */
fun upscaleLogits(lowRes: FloatArray, offset: Int, lowResSide: Int, inputSize: Size, originalSize: Size,
                  target: Int): FloatArray {
    val square = bilinear(lowRes, offset, lowResSide, lowResSide, lowResSide, target, target,
                          inputSize.height, inputSize.width)
    return bilinear(square, 0, inputSize.width, inputSize.height, inputSize.width, originalSize.height, originalSize.width)
}

fun threshold(logits: FloatArray): BooleanArray = BooleanArray(logits.size) { logits[it] > MASK_THRESHOLD }
