// Mirror of load_image in tinysam_mobile/utils/image_io.py for decoded pixels: ImageOps.exif_transpose,
// then transparency flattened onto white with Image.alpha_composite (Pillow's 8-bit integer arithmetic),
// then the alpha dropped. The apps decode in sRGB and hand the straight RGBA pixels and the EXIF
// orientation tag to uprightRgb, so the photo the model sees is the one the Python pipeline sees.

/// Upright RGB of a decoded photo: orientation first, then alpha over white, as load_image does.
public func uprightRgb(_ stored: RgbaImage, exifOrientation: Int) -> RgbImage {
    alphaOverWhite(orientedByExif(stored, exifOrientation))
}

/// The stored pixels turned upright for an EXIF orientation tag (1-8); other values leave them as
/// they are, as Pillow's exif_transpose does.
public func orientedByExif(_ image: RgbaImage, _ orientation: Int) -> RgbaImage {
    let w = image.width, h = image.height
    // Source (x, y) of output pixel (x, y); 5-8 swap the sides (Pillow's TRANSPOSE, ROTATE_270,
    // TRANSVERSE, ROTATE_90), 2-4 flip or turn in place (FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM).
    let source: (Int, Int) -> (Int, Int)
    switch orientation {
    case 2: source = { x, y in (w - 1 - x, y) }
    case 3: source = { x, y in (w - 1 - x, h - 1 - y) }
    case 4: source = { x, y in (x, h - 1 - y) }
    case 5: source = { x, y in (y, x) }
    case 6: source = { x, y in (y, h - 1 - x) }
    case 7: source = { x, y in (w - 1 - y, h - 1 - x) }
    case 8: source = { x, y in (w - 1 - y, x) }
    default: return image
    }
    let (outWidth, outHeight) = orientation >= 5 ? (h, w) : (w, h)
    var out = [UInt8](repeating: 0, count: image.pixels.count)
    for y in 0..<outHeight {
        for x in 0..<outWidth {
            let (sx, sy) = source(x, y)
            for c in 0..<4 { out[(y * outWidth + x) * 4 + c] = image.pixels[(sy * w + sx) * 4 + c] }
        }
    }
    return RgbaImage(width: outWidth, height: outHeight, pixels: out)
}

/// Image.alpha_composite(white, image).convert("RGB"), bit for bit (Pillow's AlphaComposite.c with an
/// opaque white destination: 7 extra bits of precision, rounded divisions by 255).
public func alphaOverWhite(_ image: RgbaImage) -> RgbImage {
    let precisionBits: UInt32 = 7, white: UInt32 = 255
    var out = [UInt8](repeating: 0, count: image.width * image.height * 3)
    for i in 0..<(image.width * image.height) {
        let alpha = UInt32(image.pixels[4 * i + 3])
        for c in 0..<3 {
            let value = UInt32(image.pixels[4 * i + c])
            guard alpha > 0 else { out[3 * i + c] = UInt8(white); continue }  // Pillow copies the destination
            let outAlpha255 = alpha * 255 + white * (255 - alpha)
            let coef1 = alpha * 255 * 255 * (1 << precisionBits) / outAlpha255
            let coef2 = 255 * (1 << precisionBits) - coef1
            let sum = value * coef1 + white * coef2 + (0x80 << precisionBits)
            out[3 * i + c] = UInt8((((sum >> 8) + sum) >> 8) >> precisionBits)
        }
    }
    return RgbImage(width: image.width, height: image.height, pixels: out)
}
