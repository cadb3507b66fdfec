/// An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B (Python's HxWx3 uint8).
public struct RgbImage {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image is empty (\(width)x\(height))")
        precondition(pixels.count == width * height * 3, "expected \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Channel c (0 R, 1 G, 2 B) of pixel (x, y).
    @inline(__always) public func value(_ x: Int, _ y: Int, _ c: Int) -> Int32 {
        Int32(pixels[(y * width + x) * 3 + c])
    }
}
