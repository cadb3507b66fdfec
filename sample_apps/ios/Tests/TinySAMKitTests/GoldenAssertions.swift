import XCTest
import TinySAMKit

/// Comparisons shared by the golden tests; every expected value comes from the Python reference's files.
enum GoldenAssert {
    static let coordTolerance: Float = 1e-4

    static func close(_ actual: [Float], _ expected: [Float], _ tolerance: Float, _ message: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(message): count", file: file, line: line)
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(message): largest difference", file: file, line: line)
    }

    /// A boolean mask against plane `index` of the reference's uint8 0/1 masks.
    static func sameMask(_ mask: [Bool], _ expected: [UInt8], plane index: Int, _ message: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        let plane = mask.count
        XCTAssertGreaterThanOrEqual(expected.count, (index + 1) * plane, "\(message): plane missing", file: file, line: line)
        guard expected.count >= (index + 1) * plane else { return }
        let differing = (0..<plane).filter { mask[$0] != (expected[index * plane + $0] == 1) }.count
        XCTAssertEqual(differing, 0, "\(message): pixels differing from Python", file: file, line: line)
    }
}

extension GoldenCase {
    /// The user's prompts as the reference got them: a tensor absent from the file stands for None.
    func prompts() throws -> Prompts {
        Prompts(points: has("points") ? try floats("points") : nil,
                labels: has("labels") ? try floats("labels") : nil,
                box: has("box") ? try floats("box") : nil)
    }
}
