import XCTest
import TinySAMKit

/// Prompts -> decoder inputs, and recorded low-res logits -> masks, best mask and its logits.
final class PredictGoldenTests: XCTestCase {
    func testDecoderPromptsAndMasksMatchPython() throws {
        for c in try Golden.cases("predict") {
            let originalSize = try c.size("original_size"), target = try c.int("img_size")
            let decoder = try encodePrompts(c.prompts(), originalSize: originalSize, target: target,
                                            maxTokens: try c.int("max_tokens"))
            // Exactly the prompt's tokens, (1, T, 2) and (1, T): nothing padded up to max_tokens.
            XCTAssertEqual([1, decoder.tokens], try c.shape("decoder_labels"), "\(c.name): decoder tokens")
            GoldenAssert.close(decoder.coords, try c.floats("decoder_coords"), GoldenAssert.coordTolerance, "\(c.name): decoder coords")
            XCTAssertEqual(decoder.labels, try c.floats("decoder_labels"), "\(c.name): decoder labels")

            let output = DecoderOutput(lowResLogits: try c.floats("low_res_logits"), iou: try c.floats("iou_predictions"),
                                       lowResSide: try c.shape("low_res_logits")[3])
            let inputSize = resizedShape(height: originalSize.height, width: originalSize.width, target: target)
            XCTAssertEqual(inputSize, try c.size("input_size"), c.name)
            let masks = try c.bytes("masks")
            for m in 0..<output.maskCount {
                GoldenAssert.sameMask(output.mask(m, inputSize: inputSize, originalSize: originalSize, target: target),
                                      masks, plane: m, "\(c.name): mask \(m)")
            }
            let best = bestMaskIndex(output.iou)
            XCTAssertEqual(best, try c.int("best_index"), c.name)
            GoldenAssert.close(output.upscaled(best, inputSize: inputSize, originalSize: originalSize, target: target),
                               try c.floats("best_logits"), 1e-5, "\(c.name): best mask logits")
        }
    }
}
