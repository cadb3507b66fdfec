import XCTest
import TinySAMKit

/// Prompts the Python pipeline refuses are refused here too, with a PromptError (shown to the user).
final class PromptErrorGoldenTests: XCTestCase {
    func testRefusesWhatPythonRefuses() throws {
        for c in try Golden.cases("prompt_error") {
            XCTAssertThrowsError(try encodePrompts(c.prompts(), originalSize: c.size("original_size"),
                                                   target: c.int("img_size"), numPoints: c.int("num_points")),
                                 "\(c.name): accepted prompts that the Python pipeline refuses") { error in
                XCTAssertTrue(error is PromptError, "\(c.name): \(error) is not a PromptError")
            }
        }
    }
}
