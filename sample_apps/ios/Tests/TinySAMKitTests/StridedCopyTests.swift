import XCTest
import TinySAMKit

/// A padded layout as CoreML returns it: the dense values must come out without the padding.
final class StridedCopyTests: XCTestCase {
    func testPaddedRowsAndPlanesAreSkipped() {
        // (1, 3, 4, 5) logits stored with rows of 8 and planes of 40 (4 x 8 plus 8 spare), padding NaN.
        let shape = [1, 3, 4, 5], strides = [3 * 40, 40, 8, 1]
        var storage = [Float](repeating: .nan, count: 3 * 40)
        var expected: [Float] = []
        for c in 0..<3 {
            for y in 0..<4 {
                for x in 0..<5 {
                    let value = Float(100 * c + 10 * y + x)
                    storage[c * 40 + y * 8 + x] = value
                    expected.append(value)
                }
            }
        }
        XCTAssertEqual(denseValues(shape: shape, strides: strides) { storage[$0] }, expected)
    }

    func testDenseLayoutIsCopiedAsIs() {
        let storage = (0..<24).map(Float.init)
        XCTAssertEqual(denseValues(shape: [2, 3, 4], strides: [12, 4, 1]) { storage[$0] }, storage)
    }
}
