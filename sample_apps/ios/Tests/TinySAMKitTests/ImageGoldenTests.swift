import XCTest
import TinySAMKit

/// Reading a photo like load_image (upright, transparency over white) and refusing the sizes
/// preprocessing refuses, with a typed error instead of a crash.
final class ImageGoldenTests: XCTestCase {
    func testUprightRgbMatchesLoadImage() throws {
        for c in try Golden.cases("image_read") {
            let shape = try c.shape("stored_rgba"), expectedShape = try c.shape("upright_rgb")
            let stored = RgbaImage(width: shape[1], height: shape[0], pixels: try c.bytes("stored_rgba"))
            let upright = uprightRgb(stored, exifOrientation: try c.int("orientation"))
            XCTAssertEqual([upright.height, upright.width], Array(expectedShape.prefix(2)), "\(c.name): upright size")
            let expected = try c.bytes("upright_rgb")
            XCTAssertEqual(upright.pixels.count, expected.count, "\(c.name): pixel count")
            XCTAssertEqual(zip(upright.pixels, expected).filter { $0 != $1 }.count, 0, "\(c.name): values differing from Pillow")
        }
    }

    func testTooElongatedImagesAreRefusedWithATypedError() throws {
        for c in try Golden.cases("image_error") {
            let size = try c.size("original_size"), target = try c.int("img_size")
            let image = RgbImage(width: size.width, height: size.height,
                                 pixels: [UInt8](repeating: 0, count: size.width * size.height * 3))
            XCTAssertThrowsError(try preprocess(image, target: target), "\(c.name): accepted") { error in
                XCTAssertEqual(error as? ImageError, .tooElongated(width: size.width, height: size.height, target: target), c.name)
            }
        }
    }
}
