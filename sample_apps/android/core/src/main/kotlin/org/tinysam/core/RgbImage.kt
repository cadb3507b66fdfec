package org.tinysam.core

/** An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B (Python's HxWx3 uint8). */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray) {
    init {
        require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
        require(pixels.size == width * height * 3) { "expected ${width * height * 3} bytes, got ${pixels.size}" }
    }

    /** Channel c (0 R, 1 G, 2 B) of pixel (x, y) as 0..255. */
    fun value(x: Int, y: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF

}
