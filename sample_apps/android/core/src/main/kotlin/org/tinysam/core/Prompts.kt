package org.tinysam.core

/**
 * Mirror of tinysam_mobile/utils/prompts.py: user prompts -> the decoder's contract (exact token counts).
 * Labels (SAM's ONNX decoder): -1 padding, 0 negative point, 1 positive point, 2 / 3 box corners.
 */

const val PAD_LABEL = -1.0f
const val NEGATIVE_LABEL = 0.0f
const val POSITIVE_LABEL = 1.0f
val BOX_LABELS = floatArrayOf(2.0f, 3.0f)

/** A prompt the pipeline refuses; the message is meant for the user. */
class PromptException(message: String) : IllegalArgumentException(message)

/**
 * What the user gave, in original-image pixels: points as (x, y) pairs with labels 1 / 0, a box XYXY.
 * null is Python's None; an empty point list is a list of no points (accepted with a box, or alone: the
 * decoder then sees only the padding point), exactly as the reference treats a (0, 2) array.
 */
class Prompts(val points: FloatArray? = null, val labels: FloatArray? = null, val box: FloatArray? = null)

/** Decoder inputs: (T, 2) coordinates in the resized frame, flattened, and (T) labels; T tokens, exactly. */
class DecoderPrompts(val coords: FloatArray, val labels: FloatArray) {
    /** T: the decoder input shapes are (1, T, 2) and (1, T). */
    val tokens: Int get() = labels.size
}

private fun fmt(v: Double): String = if (v == Math.rint(v) && Math.abs(v) < 1e15) v.toLong().toString() else v.toString()

/** Throw PromptException for prompts that are malformed or fall outside the image (same rules as Python). */
fun checkPrompts(prompts: Prompts, originalSize: Size) {
    val h = originalSize.height.toDouble()
    val w = originalSize.width.toDouble()
    val points = prompts.points
    if (points == null && prompts.box == null) throw PromptException("give at least one point or a box")
    if (points != null) {
        val labels = prompts.labels ?: throw PromptException("point_labels are required with point_coords")
        if (points.size % 2 != 0 || labels.size != points.size / 2) {
            throw PromptException("expected point_coords (N, 2) and point_labels (N,)")
        }
        for (label in labels) {
            if (label != NEGATIVE_LABEL && label != POSITIVE_LABEL) {
                throw PromptException("point labels must be 1 (foreground) or 0 (background)")
            }
        }
        for (i in labels.indices) {
            val x = points[2 * i].toDouble()
            val y = points[2 * i + 1].toDouble()
            if (!(x >= 0 && x <= w && y >= 0 && y <= h)) {
                throw PromptException("point (${fmt(x)}, ${fmt(y)}) is outside the ${originalSize.width}x${originalSize.height} image")
            }
        }
    }
    val box = prompts.box ?: return
    if (box.size != 4) throw PromptException("a box is 4 numbers X0,Y0,X1,Y1, got ${box.size}")
    val (x0, y0) = box[0].toDouble() to box[1].toDouble()
    val (x1, y1) = box[2].toDouble() to box[3].toDouble()
    val text = "(${fmt(x0)}, ${fmt(y0)}, ${fmt(x1)}, ${fmt(y1)})"
    if (!(x0 < x1 && y0 < y1)) throw PromptException("box $text must have x0 < x1 and y0 < y1")
    if (x0 < 0 || y0 < 0 || x1 > w || y1 > h) {
        throw PromptException("box $text reaches outside the ${originalSize.width}x${originalSize.height} image")
    }
}

/** Decoder tokens of a prompt: its points, then two box corners or one padding point (token_count in Python). */
fun tokenCount(pointCount: Int, hasBox: Boolean): Int = pointCount + if (hasBox) 2 else 1

/**
 * Exactly the tokens SAM's predictor builds: points first, then the two box corners, or without a box one
 * (0, 0) point with label -1. Nothing else is padded (every padding token takes part in the decoder's
 * attention and changes the masks): the decoder takes T = [tokenCount] tokens. maxTokens: the most the
 * decoder takes (the manifest's prompt_tokens.max); a longer prompt is refused, never truncated.
 */
fun encodePrompts(prompts: Prompts, originalSize: Size, target: Int, maxTokens: Int?): DecoderPrompts {
    checkPrompts(prompts, originalSize)
    val box = prompts.box
    val points = prompts.points
    // Labels without points are ignored, as in Python (checkPrompts refused points without labels).
    val pointLabels = points?.let { prompts.labels } ?: FloatArray(0)
    val labels = pointLabels + (if (box != null) BOX_LABELS else floatArrayOf(PAD_LABEL))
    if (maxTokens != null && labels.size > maxTokens) {
        throw PromptException("${labels.size} prompt tokens (points, then 2 box corners or 1 padding point) exceed " +
                              "the decoder's $maxTokens")
    }
    val coords = (if (points != null) applyCoords(points, originalSize, target) else FloatArray(0)) +
        (if (box != null) applyBoxes(box, originalSize, target) else FloatArray(2))
    return DecoderPrompts(coords, labels)
}

/**
 * The points' Fourier features, the prompt encoder's first step, for the w8a8 decoder, which takes them
 * in place of coordinates (sin / cos have no integer kernels). coords (N, 2) in the input frame,
 * gaussianMatrix (2, K) row-major from the manifest -> (N, 2K): the K sines, then the K cosines.
 * Mirror of point_features in tinysam_mobile/utils/prompts.py.
 */
fun pointFeatures(coords: FloatArray, gaussianMatrix: FloatArray, inputSize: Int): FloatArray {
    val k = gaussianMatrix.size / 2
    val n = coords.size / 2
    val features = FloatArray(n * 2 * k)
    for (i in 0 until n) {
        val x = 2.0f * ((coords[2 * i] + 0.5f) / inputSize) - 1.0f
        val y = 2.0f * ((coords[2 * i + 1] + 0.5f) / inputSize) - 1.0f
        for (j in 0 until k) {
            val angle = (2.0 * Math.PI).toFloat() * (x * gaussianMatrix[j] + y * gaussianMatrix[k + j])
            features[2 * k * i + j] = Math.sin(angle.toDouble()).toFloat()
            features[2 * k * i + k + j] = Math.cos(angle.toDouble()).toFloat()
        }
    }
    return features
}
