/// Straight (not premultiplied) 8-bit RGBA pixels as a file stores them, rows top to bottom, before the
/// EXIF orientation is applied: what ImageIO / BitmapFactory decode, ahead of load_image's steps.
public struct RgbaImage {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image is empty (\(width)x\(height))")
        precondition(pixels.count == width * height * 4, "expected \(width * height * 4) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
