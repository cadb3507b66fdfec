package org.tinysam.core

/**
 * Mirror of TinySamPredictor.predict after the decoder: best-mask choice, upscaling, threshold.
 * The decoder returns 3 masks (TinySAM mask tokens 1..3) and their predicted IoU.
 */

/** Index of the highest predicted IoU; the first one on ties (numpy's argmax). */
fun bestMaskIndex(iou: FloatArray): Int {
    var best = 0
    for (i in 1 until iou.size) if (iou[i] > iou[best]) best = i
    return best
}

/** Decoder output of one prompt: masks x side x side low-res logits and masks IoU predictions. */
class DecoderOutput(val lowResLogits: FloatArray, val iou: FloatArray, val lowResSide: Int) {
    val maskCount: Int get() = iou.size

    /** Logits of mask m at the original image size. */
    fun upscaled(m: Int, inputSize: Size, originalSize: Size, target: Int): FloatArray =
        upscaleLogits(lowResLogits, m * lowResSide * lowResSide, lowResSide, inputSize, originalSize, target)

    /** Boolean mask m at the original image size (logit > 0). */
    fun mask(m: Int, inputSize: Size, originalSize: Size, target: Int): BooleanArray =
        threshold(upscaled(m, inputSize, originalSize, target))
}
