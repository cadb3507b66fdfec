import XCTest
import TinySAMKit

/// Touches become prompts the Python pipeline accepts: a drag leaving the photo is clamped onto it.
final class PromptStateTests: XCTestCase {
    private let size = Size(height: 300, width: 451)

    func testDragLeavingThePhotoIsClampedToIt() throws {
        var state = PromptState(imageSize: size)
        state.setBox(fromX: 500, y0: -20, toX: 100.5, y1: 120)
        XCTAssertEqual(state.box, [100.5, 0, 451, 120])
        XCTAssertNoThrow(try encodePrompts(state.prompts, originalSize: size, target: 1024, maxTokens: 10))
    }

    func testPointsOutsideThePhotoAreClampedToItsEdges() {
        var state = PromptState(imageSize: size)
        state.addPoint(x: -3, y: 310, positive: true)
        state.addPoint(x: 460.25, y: 12.5, positive: false)
        XCTAssertEqual(state.points, [0, 300, 451, 12.5])
        XCTAssertEqual(state.labels, [positiveLabel, negativeLabel])
    }

    /// The golden case Python refuses (a box past the right edge) becomes, as a drag, a box it accepts.
    func testRefusedGoldenBoxIsAcceptedOnceClamped() throws {
        let c = try Golden.read("prompt_error_box_outside.bin")
        let size = try c.size("original_size"), box = try c.floats("box")
        XCTAssertThrowsError(try encodePrompts(c.prompts(), originalSize: size, target: try c.int("img_size"), maxTokens: try c.int("max_tokens")))
        var state = PromptState(imageSize: size)
        state.setBox(fromX: Double(box[0]), y0: Double(box[1]), toX: Double(box[2]), y1: Double(box[3]))
        XCTAssertNoThrow(try encodePrompts(state.prompts, originalSize: size, target: try c.int("img_size"), maxTokens: try c.int("max_tokens")))
    }

    func testNoTapIsNoPointsAndClearForgetsEverything() throws {
        var state = PromptState(imageSize: size)
        XCTAssertNil(state.prompts.points)
        XCTAssertThrowsError(try encodePrompts(state.prompts, originalSize: size, target: 1024, maxTokens: 10))
        state.addPoint(x: 10, y: 10, positive: true)
        state.setBox(fromX: 1, y0: 1, toX: 50, y1: 60)
        state.clear()
        XCTAssertNil(state.prompts.points)
        XCTAssertNil(state.prompts.box)
    }
}
