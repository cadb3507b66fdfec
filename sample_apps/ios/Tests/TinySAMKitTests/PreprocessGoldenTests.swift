import XCTest
import TinySAMKit

/// Longest-side resize (Pillow's bilinear, bit for bit) and normalise + pad (float32, bit for bit).
final class PreprocessGoldenTests: XCTestCase {
    func testResizeAndEncoderInputMatchPython() throws {
        for c in try Golden.cases("preprocess") {
            let shape = try c.shape("image")
            let image = RgbImage(width: shape[1], height: shape[0], pixels: try c.bytes("image"))
            let target = try c.int("img_size")
            XCTAssertEqual(resizedShape(height: image.height, width: image.width, target: target),
                           try c.size("resized_shape"), c.name)
            let resized = resizeLongestSide(image, target: target)
            let expected = try c.bytes("resized")
            XCTAssertEqual(resized.pixels.count, expected.count, "\(c.name): resized size")
            XCTAssertEqual(zip(expected, resized.pixels).filter { $0 != $1 }.count, 0, "\(c.name): pixels differing from Pillow")
            let input = try preprocess(image, target: target)
            XCTAssertEqual(input.inputSize, try c.size("input_size"), c.name)
            XCTAssertEqual(input.tensor, try c.floats("encoder_input"), "\(c.name): encoder input not bit-identical")
        }
    }
}
