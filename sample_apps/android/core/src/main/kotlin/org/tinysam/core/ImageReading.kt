package org.tinysam.core

/*
 * Mirror of load_image in tinysam_mobile/utils/image_io.py for decoded pixels: ImageOps.exif_transpose,
 * then transparency flattened onto white with Image.alpha_composite (Pillow's 8-bit integer arithmetic),
 * then the alpha dropped. The app decodes in sRGB and hands the straight RGBA pixels and the EXIF
 * orientation tag to uprightRgb, so the photo the model sees is the one the Python pipeline sees.
 */

/** Upright RGB of a decoded photo: orientation first, then alpha over white, as load_image does. */
fun uprightRgb(stored: RgbaImage, exifOrientation: Int): RgbImage = alphaOverWhite(orientedByExif(stored, exifOrientation))

/** The stored pixels turned upright for an EXIF orientation tag (1-8); other values leave them as they are (exif_transpose). */
fun orientedByExif(image: RgbaImage, orientation: Int): RgbaImage {
    val w = image.width
    val h = image.height
    // Source (x, y) of output pixel (x, y); 5-8 swap the sides (Pillow's TRANSPOSE, ROTATE_270,
    // TRANSVERSE, ROTATE_90), 2-4 flip or turn in place (FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM).
    val source: (Int, Int) -> Pair<Int, Int> = when (orientation) {
        2 -> { x, y -> Pair(w - 1 - x, y) }
        3 -> { x, y -> Pair(w - 1 - x, h - 1 - y) }
        4 -> { x, y -> Pair(x, h - 1 - y) }
        5 -> { x, y -> Pair(y, x) }
        6 -> { x, y -> Pair(y, h - 1 - x) }
        7 -> { x, y -> Pair(w - 1 - y, h - 1 - x) }
        8 -> { x, y -> Pair(w - 1 - y, x) }
        else -> return image
    }
    val outWidth = if (orientation >= 5) h else w
    val outHeight = if (orientation >= 5) w else h
    val out = ByteArray(image.pixels.size)
    for (y in 0 until outHeight) {
        for (x in 0 until outWidth) {
            val (sx, sy) = source(x, y)
            for (c in 0 until 4) out[(y * outWidth + x) * 4 + c] = image.pixels[(sy * w + sx) * 4 + c]
        }
    }
    return RgbaImage(outWidth, outHeight, out)
}

/**
 * Image.alpha_composite(white, image).convert("RGB"), bit for bit (Pillow's AlphaComposite.c with an
 * opaque white destination: 7 extra bits of precision, rounded divisions by 255). Longs: Pillow computes in
 * unsigned 32 bits, and alpha * 255 * 255 * 128 comes within 1 % of Int.MAX_VALUE.
 */
fun alphaOverWhite(image: RgbaImage): RgbImage {
    val precisionBits = 7
    val white = 255L
    val out = ByteArray(image.width * image.height * 3)
    for (i in 0 until image.width * image.height) {
        val alpha = (image.pixels[4 * i + 3].toInt() and 0xFF).toLong()
        for (c in 0 until 3) {
            if (alpha == 0L) { out[3 * i + c] = white.toByte(); continue }  // Pillow copies the destination
            val value = (image.pixels[4 * i + c].toInt() and 0xFF).toLong()
            val outAlpha255 = alpha * 255 + white * (255 - alpha)
            val coef1 = alpha * 255 * 255 * (1L shl precisionBits) / outAlpha255
            val coef2 = 255 * (1L shl precisionBits) - coef1
            val sum = value * coef1 + white * coef2 + (0x80L shl precisionBits)
            out[3 * i + c] = ((((sum shr 8) + sum) shr 8) shr precisionBits).toByte()
        }
    }
    return RgbImage(image.width, image.height, out)
}
