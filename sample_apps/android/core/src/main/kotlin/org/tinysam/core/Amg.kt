package org.tinysam.core

/** Mirror of the parts of tinysam_mobile/utils/amg.py that TinySAM's hierarchical generator uses. */

/** A prompt point (x, y) in original-image pixels, in double precision like the Python grid. */
data class Point(val x: Double, val y: Double)

/** Round-2 offsets in lattice strides (dx, dy), in the public generator's order: the 3x3 block minus
 * the point, then the +2 column, the +2 row and the +2 corner. */
val HIERARCHY_OFFSETS: List<IntArray> =
    (-1..1).flatMap { dx -> (-1..1).map { dy -> intArrayOf(dx, dy) } }.filter { !(it[0] == 0 && it[1] == 0) } +
        (-1..1).map { intArrayOf(2, it) } + (-1..1).map { intArrayOf(it, 2) } + listOf(intArrayOf(2, 2))

/** Round 2 is this many times denser than round 1. */
const val ROUND1_DIVISOR = 4

/** n*n points at ((i + 0.5) / n * w, (j + 0.5) / n * h), x varying fastest. */
fun gridInPixels(nPerSide: Int, size: Size): List<Point> = (0 until nPerSide).flatMap { j ->
    (0 until nPerSide).map { i -> Point((i + 0.5) / nPerSide * size.width, (j + 0.5) / nPerSide * size.height) }
}

/** (x, y) strides of the round-2 lattice: side / pointsPerSide, at least one pixel. */
fun hierarchyStrides(size: Size, pointsPerSide: Int): IntArray =
    intArrayOf(maxOf(size.width / pointsPerSide, 1), maxOf(size.height / pointsPerSide, 1))

/** Round-2 candidates around each round-1 point, inside the image, without repeats or round-1 points. */
fun hierarchyCandidates(round1: List<Point>, size: Size, pointsPerSide: Int): List<Point> {
    val stride = hierarchyStrides(size, pointsPerSide)
    // + 0.0 turns -0.0 into 0.0, which numpy's unique treats as equal.
    val seen = HashSet<Point>(round1.map { Point(it.x + 0.0, it.y + 0.0) })
    val out = ArrayList<Point>()
    for (p in round1) {
        for (offset in HIERARCHY_OFFSETS) {
            val c = Point(p.x + (offset[0] * stride[0]).toDouble() + 0.0, p.y + (offset[1] * stride[1]).toDouble() + 0.0)
            if (c.x >= 0 && c.y >= 0 && c.x < size.width && c.y < size.height && seen.add(c)) out.add(c)
        }
    }
    return out
}

/** covered (row-major h x w) at the pixels holding the points (coordinates floored). */
fun coveredAt(covered: BooleanArray, width: Int, point: Point): Boolean =
    covered[point.y.toInt() * width + point.x.toInt()]

/** IoU of (logit > threshold + offset) and (logit > threshold - offset); NaN when the second is empty. */
fun stabilityScore(logits: FloatArray, maskThreshold: Float, offset: Float): Float {
    var inner = 0
    var outer = 0
    for (v in logits) {
        if (v > maskThreshold + offset) inner++
        if (v > maskThreshold - offset) outer++
    }
    return inner.toFloat() / outer.toFloat()
}

/** Inclusive XYXY pixel box of a row-major mask; (0, 0, 0, 0) when empty. */
fun maskBox(mask: BooleanArray, width: Int): IntArray {
    var x0 = Int.MAX_VALUE
    var y0 = Int.MAX_VALUE
    var x1 = -1
    var y1 = -1
    for (i in mask.indices) {
        if (!mask[i]) continue
        val x = i % width
        val y = i / width
        if (x < x0) x0 = x
        if (x > x1) x1 = x
        if (y < y0) y0 = y
        if (y > y1) y1 = y
    }
    return if (x1 < 0) IntArray(4) else intArrayOf(x0, y0, x1, y1)
}

/** IoU of two XYXY boxes in float32 with torchvision's arithmetic (areas without +1). */
fun boxIou(a: IntArray, b: IntArray): Float {
    val areaA = (a[2].toFloat() - a[0].toFloat()) * (a[3].toFloat() - a[1].toFloat())
    val areaB = (b[2].toFloat() - b[0].toFloat()) * (b[3].toFloat() - b[1].toFloat())
    val w = maxOf(minOf(a[2], b[2]).toFloat() - maxOf(a[0], b[0]).toFloat(), 0.0f)
    val h = maxOf(minOf(a[3], b[3]).toFloat() - maxOf(a[1], b[1]).toFloat(), 0.0f)
    val inter = w * h
    return inter / (areaA + areaB - inter)
}

/** Greedy NMS (torchvision.ops.nms semantics): kept indices, best score first, ties in input order. */
fun boxNms(boxes: List<IntArray>, scores: FloatArray, iouThreshold: Float): IntArray {
    val order = scores.indices.sortedWith(compareBy<Int> { -scores[it] })  // stable sort
    val suppressed = BooleanArray(order.size)
    val kept = ArrayList<Int>()
    for (i in order.indices) {
        if (suppressed[i]) continue
        kept.add(order[i])
        for (j in i + 1 until order.size) {
            if (!suppressed[j] && boxIou(boxes[order[i]], boxes[order[j]]) > iouThreshold) suppressed[j] = true
        }
    }
    return kept.toIntArray()
}
