package org.tinysam.core

/** An image the pipeline cannot take (Python's ImageError); the message is meant for the user. */
class ImageException(message: String) : IllegalArgumentException(message) {
    companion object {
        /** The short side would shrink to 0 pixels in the longest-side resize. */
        fun tooElongated(width: Int, height: Int, target: Int) = ImageException(
            "a ${width}x$height image is too elongated: its short side would shrink to 0 pixels at $target")
    }
}
