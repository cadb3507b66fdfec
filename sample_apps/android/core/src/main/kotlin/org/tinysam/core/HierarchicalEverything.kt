package org.tinysam.core

/**
 * Mirror of TinySamHierarchicalMaskGenerator (tinysam_mobile/automatic_mask_generator.py):
 * round 1 decodes a (pointsPerSide / 4)^2 grid and marks where kept masks are confident
 * (logit > highScoreThresh); round 2 decodes the uncovered points of the pointsPerSide lattice;
 * one box NMS over both rounds. Defaults are the public TinySAM ones.
 */
class EverythingConfig(
    val pointsPerSide: Int = 32,
    val pointsPerBatch: Int = 64,
    val predIouThresh: Float = 0.88f,
    val stabilityScoreThresh: Float = 0.95f,
    val stabilityScoreOffset: Float = 1.0f,
    val boxNmsThresh: Float = 0.7f,
    val highScoreThresh: Float = 8.5f
)

/** The batched decoder (the app's decoder_batch artifact): count single-point prompts -> outputs. */
interface BatchDecoder {
    /** coords (count, numPoints, 2) and labels (count, numPoints), flattened; returns count x 3 masks. */
    fun decode(coords: FloatArray, labels: FloatArray, count: Int): DecoderOutput
}

/** One mask of "everything": row-major boolean mask at the original size and SAM's record fields. */
class MaskRecord(val mask: BooleanArray, val area: Int, val boxXywh: IntArray, val predictedIou: Float,
                 val stability: Float, val point: Point)

class HierarchicalEverything(private val config: EverythingConfig, private val decoder: BatchDecoder,
                             private val numPoints: Int, private val target: Int) {
    private class Candidate(val mask: BooleanArray, val box: IntArray, val iou: Float, val stability: Float, val point: Point)

    /** Prompts per round of the last generate() call. */
    val promptsPerRound = ArrayList<Int>()

    /** progress(done, planned) after each decoder call. */
    fun generate(originalSize: Size, progress: (Int, Int) -> Unit = { _, _ -> }): List<MaskRecord> {
        promptsPerRound.clear()
        val inputSize = resizedShape(originalSize.height, originalSize.width, target)
        val round1 = gridInPixels(config.pointsPerSide / ROUND1_DIVISOR, originalSize)
        val lattice = hierarchyCandidates(round1, originalSize, config.pointsPerSide)
        val covered = BooleanArray(originalSize.height * originalSize.width)
        val first = decodePoints(round1, originalSize, inputSize, round1.size + lattice.size, covered, progress)
        val round2 = lattice.filter { !coveredAt(covered, originalSize.width, it) }
        val second = decodePoints(round2, originalSize, inputSize, round1.size + round2.size, null, progress)
        val candidates = first + second
        val keep = boxNms(candidates.map { it.box }, FloatArray(candidates.size) { candidates[it].iou }, config.boxNmsThresh)
        return keep.map { i ->
            val c = candidates[i]
            MaskRecord(c.mask, c.mask.count { it }, intArrayOf(c.box[0], c.box[1], c.box[2] - c.box[0], c.box[3] - c.box[1]),
                       c.iou, c.stability, c.point)
        }
    }

    private fun decodePoints(points: List<Point>, originalSize: Size, inputSize: Size, planned: Int,
                             covered: BooleanArray?, progress: (Int, Int) -> Unit): List<Candidate> {
        val done = promptsPerRound.sum()
        promptsPerRound.add(points.size)
        val out = ArrayList<Candidate>()
        for (start in points.indices step config.pointsPerBatch) {
            val chunk = points.subList(start, minOf(start + config.pointsPerBatch, points.size))
            out += decodeBatch(chunk, originalSize, inputSize, covered)
            progress(done + start + chunk.size, planned)
        }
        return out
    }

    private fun decodeBatch(points: List<Point>, originalSize: Size, inputSize: Size, covered: BooleanArray?): List<Candidate> {
        // One positive point per prompt, the rest padding: the predictor's single-click prompt.
        val xy = FloatArray(points.size * 2) { if (it % 2 == 0) points[it / 2].x.toFloat() else points[it / 2].y.toFloat() }
        val scaled = applyCoords(xy, originalSize, target)
        val coords = FloatArray(points.size * numPoints * 2)
        val labels = FloatArray(points.size * numPoints) { PAD_LABEL }
        for (p in points.indices) {
            coords[p * numPoints * 2] = scaled[2 * p]
            coords[p * numPoints * 2 + 1] = scaled[2 * p + 1]
            labels[p * numPoints] = POSITIVE_LABEL
        }
        val output = decoder.decode(coords, labels, points.size)
        val masksPerPrompt = output.maskCount / points.size
        val out = ArrayList<Candidate>()
        for (m in 0 until output.maskCount) {
            // The IoU filter needs no upsampled mask: only survivors are upsampled.
            if (config.predIouThresh > 0 && !(output.iou[m] > config.predIouThresh)) continue
            val logits = output.upscaled(m, inputSize, originalSize, target)
            val stability = stabilityScore(logits, MASK_THRESHOLD, config.stabilityScoreOffset)
            if (config.stabilityScoreThresh > 0 && !(stability >= config.stabilityScoreThresh)) continue
            if (covered != null) for (i in logits.indices) if (logits[i] > config.highScoreThresh) covered[i] = true
            val mask = threshold(logits)
            out.add(Candidate(mask, maskBox(mask, originalSize.width), output.iou[m], stability, points[m / masksPerPrompt]))
        }
        return out
    }
}
