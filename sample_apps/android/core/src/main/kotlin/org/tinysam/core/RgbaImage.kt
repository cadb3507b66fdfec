package org.tinysam.core

/**
 * Straight (not premultiplied) 8-bit RGBA pixels as a file stores them, rows top to bottom, before the
 * EXIF orientation is applied: what BitmapFactory decodes (inPremultiplied = false), ahead of load_image's steps.
 */
class RgbaImage(val width: Int, val height: Int, val pixels: ByteArray) {
    init {
        require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
        require(pixels.size == width * height * 4) { "expected ${width * height * 4} bytes, got ${pixels.size}" }
    }

    companion object {
        /** From Android's packed non-premultiplied ARGB ints (Bitmap.getPixels). */
        fun fromArgb(width: Int, height: Int, argb: IntArray): RgbaImage {
            val bytes = ByteArray(width * height * 4)
            for (i in argb.indices) {
                bytes[i * 4] = (argb[i] shr 16).toByte()
                bytes[i * 4 + 1] = (argb[i] shr 8).toByte()
                bytes[i * 4 + 2] = argb[i].toByte()
                bytes[i * 4 + 3] = (argb[i] ushr 24).toByte()
            }
            return RgbaImage(width, height, bytes)
        }
    }
}
