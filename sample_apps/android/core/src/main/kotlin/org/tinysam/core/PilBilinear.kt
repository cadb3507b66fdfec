package org.tinysam.core

import kotlin.math.ceil

/**
 * Pillow's Image.resize(size, BILINEAR) on 8-bit RGB, bit for bit (Pillow's Resample.c).
 *
 * The Python reference resizes through Pillow, whose bilinear filter is a triangle whose support
 * grows with the downscale factor (antialiasing), with weights rounded to fixed point: the
 * two 1-D passes go through an 8-bit intermediate, in the order Pillow 13 picks. Any other
 * bilinear (OpenGL-style, Android's Bitmap scaling, CoreImage) gives different pixels.
 */
object PilBilinear {
    private const val PRECISION_BITS = 32 - 8 - 2
    private const val ROUNDING = 1 shl (PRECISION_BITS - 1)

    /** Per output pixel: first input index, tap count, and ksize fixed-point weights. */
    private class Coefficients(val first: IntArray, val count: IntArray, val kernelSize: Int, val weights: IntArray)

    private fun triangle(x: Double): Double {
        val a = if (x < 0.0) -x else x
        return if (a < 1.0) 1.0 - a else 0.0
    }

    private fun coefficients(inSize: Int, outSize: Int): Coefficients {
        val scale = inSize.toDouble() / outSize
        val filterScale = if (scale < 1.0) 1.0 else scale
        val support = 1.0 * filterScale
        val kernelSize = ceil(support).toInt() * 2 + 1
        val first = IntArray(outSize)
        val count = IntArray(outSize)
        val weights = IntArray(outSize * kernelSize)
        val taps = DoubleArray(kernelSize)
        for (xx in 0 until outSize) {
            val center = (xx + 0.5) * scale
            val ss = 1.0 / filterScale
            // Pillow rounds the window ends by truncating value + 0.5, then clamps to the image.
            val xmin = maxOf((center - support + 0.5).toInt(), 0)
            val xmax = minOf((center + support + 0.5).toInt(), inSize) - xmin
            var total = 0.0
            for (x in 0 until xmax) {
                val w = triangle((x + xmin - center + 0.5) * ss)
                taps[x] = w
                total += w
            }
            for (x in 0 until xmax) {
                val w = if (total != 0.0) taps[x] / total else taps[x]
                val fixed = w * (1 shl PRECISION_BITS)
                weights[xx * kernelSize + x] = if (w < 0) (-0.5 + fixed).toInt() else (0.5 + fixed).toInt()
            }
            first[xx] = xmin
            count[xx] = xmax
        }
        return Coefficients(first, count, kernelSize, weights)
    }

    private fun clip8(value: Int): Int = when {
        value >= (1 shl PRECISION_BITS shl 8) -> 255
        value <= 0 -> 0
        else -> value shr PRECISION_BITS
    }

    fun resize(image: RgbImage, newWidth: Int, newHeight: Int): RgbImage {
        require(newWidth > 0 && newHeight > 0) { "resize to an empty size (${newWidth}x$newHeight)" }
        val needHorizontal = newWidth != image.width
        val needVertical = newHeight != image.height
        if (!needHorizontal && !needVertical) return RgbImage(image.width, image.height, image.pixels.copyOf())
        val horizontal = coefficients(image.width, newWidth)
        val vertical = coefficients(image.height, newHeight)
        // Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice
        // what the width does; the 8-bit intermediate makes the order visible in the result.
        val shrinkY = image.height - newHeight
        val horizontalFirst = !(shrinkY > 0 && shrinkY > (image.width - newWidth) * 2)
        if (!horizontalFirst) {
            val columns = if (needVertical) resizeColumns(image, vertical, newHeight) else image
            return if (needHorizontal) resizeRows(columns, horizontal, 0, newHeight, newWidth) else columns
        }
        var current = image
        if (needHorizontal) {
            // Only the rows the vertical pass reads, as Pillow does.
            val firstRow = vertical.first[0]
            val lastRow = vertical.first[newHeight - 1] + vertical.count[newHeight - 1]
            current = resizeRows(image, horizontal, firstRow, lastRow, newWidth)
            for (i in 0 until newHeight) vertical.first[i] -= firstRow
        }
        return if (needVertical) resizeColumns(current, vertical, newHeight) else current
    }

    private fun resizeRows(src: RgbImage, k: Coefficients, firstRow: Int, lastRow: Int, newWidth: Int): RgbImage {
        val rows = lastRow - firstRow
        val out = ByteArray(newWidth * rows * 3)
        for (y in 0 until rows) {
            for (xx in 0 until newWidth) {
                for (c in 0 until 3) {
                    var sum = ROUNDING
                    for (x in 0 until k.count[xx]) {
                        sum += src.value(x + k.first[xx], y + firstRow, c) * k.weights[xx * k.kernelSize + x]
                    }
                    out[(y * newWidth + xx) * 3 + c] = clip8(sum).toByte()
                }
            }
        }
        return RgbImage(newWidth, rows, out)
    }

    private fun resizeColumns(src: RgbImage, k: Coefficients, newHeight: Int): RgbImage {
        val out = ByteArray(src.width * newHeight * 3)
        for (yy in 0 until newHeight) {
            for (x in 0 until src.width) {
                for (c in 0 until 3) {
                    var sum = ROUNDING
                    for (y in 0 until k.count[yy]) {
                        sum += src.value(x, y + k.first[yy], c) * k.weights[yy * k.kernelSize + y]
                    }
                    out[(yy * src.width + x) * 3 + c] = clip8(sum).toByte()
                }
            }
        }
        return RgbImage(src.width, newHeight, out)
    }
}
