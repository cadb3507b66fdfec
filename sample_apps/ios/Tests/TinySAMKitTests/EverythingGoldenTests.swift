import XCTest
import TinySAMKit

/// Replays a whole everything-mode run of the Python generator: the recorded decoder answers are fed
/// back through the app's fixed-batch adapter, and every call must ask for the recorded prompts.
final class EverythingGoldenTests: XCTestCase {
    /// The app's batched decoder model as the recording saw it: always `batchSize` prompts in, the
    /// recorded answers for the real ones out, and NaN logits for the padding the adapter must drop.
    private final class ReplayModel: FixedBatchModel {
        let batchSize: Int
        let pointsPerPrompt: Int
        private let coords: [Float], labels: [Float], lowRes: [Float], iou: [Float], callSizes: [Int]
        private let side: Int
        private(set) var call = 0
        private var prompt = 0

        init(_ c: GoldenCase) throws {
            batchSize = try c.int("points_per_batch")
            pointsPerPrompt = try c.shape("decoder_coords")[1]
            coords = try c.floats("decoder_coords"); labels = try c.floats("decoder_labels")
            lowRes = try c.floats("low_res_logits"); iou = try c.floats("iou_predictions")
            callSizes = try c.ints("call_sizes")
            side = try c.shape("low_res_logits")[3]
        }

        func decodeBatch(coords given: [Float], labels givenLabels: [Float]) throws -> DecoderOutput {
            guard call < callSizes.count else { throw GoldenError(description: "more decoder calls than recorded") }
            let count = callSizes[call], n = pointsPerPrompt
            XCTAssertEqual(given.count, batchSize * n * 2, "coords of call \(call) are not one full batch")
            XCTAssertEqual(givenLabels.count, batchSize * n, "labels of call \(call) are not one full batch")
            GoldenAssert.close(Array(given.prefix(count * n * 2)), Array(coords[prompt * n * 2..<(prompt + count) * n * 2]),
                               GoldenAssert.coordTolerance, "coords of call \(call)")
            XCTAssertEqual(Array(givenLabels.prefix(count * n)), Array(labels[prompt * n..<(prompt + count) * n]),
                           "labels of call \(call)")
            // Python's pad_batch repeats the last prompt to fill the batch.
            let last = prompt + count - 1
            let padCoords = Array((count..<batchSize).map { _ in coords[last * n * 2..<(last + 1) * n * 2] }.joined())
            XCTAssertEqual(Array(given.dropFirst(count * n * 2)), padCoords, "padding coords of call \(call)")
            let padLabels = Array((count..<batchSize).map { _ in labels[last * n..<(last + 1) * n] }.joined())
            XCTAssertEqual(Array(givenLabels.dropFirst(count * n)), padLabels, "padding labels of call \(call)")
            let plane = 3 * side * side, padding = batchSize - count
            let output = DecoderOutput(
                lowResLogits: Array(lowRes[prompt * plane..<(prompt + count) * plane]) + [Float](repeating: .nan, count: padding * plane),
                iou: Array(iou[prompt * 3..<(prompt + count) * 3]) + [Float](repeating: 1, count: padding * 3), lowResSide: side)
            call += 1
            prompt += count
            return output
        }
    }

    func testReplayOfPythonRunGivesTheSameMasks() throws {
        for c in try Golden.cases("everything") {
            let originalSize = try c.size("original_size"), th = try c.floats("thresholds")
            var config = EverythingConfig()
            config.pointsPerSide = try c.int("points_per_side")
            config.pointsPerBatch = try c.int("points_per_batch")
            (config.predIouThresh, config.stabilityScoreThresh, config.stabilityScoreOffset) = (th[0], th[1], th[2])
            (config.boxNmsThresh, config.highScoreThresh) = (th[3], th[4])
            let model = try ReplayModel(c)
            let generator = HierarchicalEverything(config: config, decoder: PaddedBatchDecoder(model),
                                                   numPoints: model.pointsPerPrompt, target: try c.int("img_size"))
            var reported: [(Int, Int)] = []
            let records = try generator.generate(originalSize: originalSize) { reported.append(($0, $1)) }
            XCTAssertEqual(generator.promptsPerRound, try c.ints("prompts_per_round"), c.name)
            XCTAssertEqual(model.call, try c.ints("call_sizes").count, "\(c.name): decoder calls")
            XCTAssertEqual(reported.count, model.call, "\(c.name): one progress report per decoder call")
            XCTAssertEqual(reported.last?.0, try c.ints("prompts_per_round").reduce(0, +), "\(c.name): progress at the end")

            let areas = try c.ints("areas"), boxes = try c.ints("boxes_xywh"), ious = try c.floats("predicted_iou")
            let stability = try c.floats("stability"), points = try c.floats("point_coords"), masks = try c.bytes("masks")
            XCTAssertEqual(records.count, areas.count, "\(c.name): masks after NMS")
            for (k, r) in records.enumerated() where k < areas.count {
                XCTAssertEqual(r.area, areas[k], "\(c.name) area \(k)")
                XCTAssertEqual(r.boxXywh, Array(boxes[4 * k..<4 * k + 4]), "\(c.name) box \(k)")
                XCTAssertEqual(r.predictedIou, ious[k], "\(c.name) IoU \(k)")
                XCTAssertEqual(r.stability, stability[k], "\(c.name) stability \(k)")
                XCTAssertEqual(r.point.x, Double(points[2 * k]), accuracy: 1e-4, "\(c.name) point x \(k)")
                XCTAssertEqual(r.point.y, Double(points[2 * k + 1]), accuracy: 1e-4, "\(c.name) point y \(k)")
                GoldenAssert.sameMask(r.mask, masks, plane: k, "\(c.name): mask \(k)")
            }
        }
    }
}
