import XCTest
import TinySAMKit

/// Prompts the Python pipeline refuses are refused here too, with a PromptError (shown to the user).
final class PromptErrorGoldenTests: XCTestCase {
    func testRefusesWhatPythonRefuses() throws {
        for c in try Golden.cases("prompt_error") {
            let prompts = try c.prompts(), size = try c.size("original_size"), maxTokens = try c.int("max_tokens")
            XCTAssertThrowsError(try encodePrompts(prompts, originalSize: size, target: c.int("img_size"), maxTokens: maxTokens),
                                 "\(c.name): accepted prompts that the Python pipeline refuses") { error in
                XCTAssertTrue(error is PromptError, "\(c.name): \(error) is not a PromptError")
                // A valid prompt refused for its token count: the reference's wording.
                guard (try? checkPrompts(prompts, originalSize: size)) != nil else { return }
                let tokens = tokenCount(pointCount: (prompts.points?.count ?? 0) / 2, hasBox: prompts.box != nil)
                XCTAssertEqual("\(error)", "\(tokens) prompt tokens (points, then 2 box corners or 1 padding point) " +
                               "exceed the decoder's \(maxTokens)", c.name)
            }
        }
    }

    /// The most tokens the decoder takes is accepted exactly, one more is refused, never truncated.
    func testTokensUpToTheMaximumAndNoMore() throws {
        let size = Size(height: 300, width: 451), box: [Float] = [10, 20, 200, 250]
        for points in 0...9 {
            let coords = (0..<points).flatMap { [Float(5 * $0), Float(3 * $0)] }
            for withBox in [false, true] {
                let prompts = Prompts(points: coords, labels: [Float](repeating: positiveLabel, count: points),
                                      box: withBox ? box : nil)
                let tokens = points + (withBox ? 2 : 1)
                XCTAssertEqual(tokenCount(pointCount: points, hasBox: withBox), tokens)
                if tokens > 10 {
                    XCTAssertThrowsError(try encodePrompts(prompts, originalSize: size, target: 1024, maxTokens: 10))
                    continue
                }
                let decoder = try encodePrompts(prompts, originalSize: size, target: 1024, maxTokens: 10)
                XCTAssertEqual([decoder.tokens, decoder.coords.count], [tokens, 2 * tokens], "\(points) points, box \(withBox)")
                XCTAssertEqual(Array(decoder.labels.suffix(withBox ? 2 : 1)), withBox ? boxLabels : [padLabel])
                XCTAssertEqual(try encodePrompts(prompts, originalSize: size, target: 1024, maxTokens: nil).labels, decoder.labels)
            }
        }
    }
}
