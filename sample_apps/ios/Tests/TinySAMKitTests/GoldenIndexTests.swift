import XCTest

/// A kind of golden case that no Swift test reads would pass unnoticed: every kind must be one of these.
final class GoldenIndexTests: XCTestCase {
    static let checkedKinds: Set<String> = [
        "preprocess", "predict", "prompt_error", "everything", "image_error", "image_read",
    ]

    func testEveryGoldenKindIsChecked() throws {
        let kinds = Set(try Golden.index().map(\.kind))
        XCTAssertFalse(kinds.isEmpty, "empty index.txt")
        XCTAssertEqual(kinds.subtracting(Self.checkedKinds), [], "golden kinds no Swift test checks")
    }
}
