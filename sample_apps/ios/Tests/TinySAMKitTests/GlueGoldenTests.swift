import XCTest
@testable import TinySAMKit

/// Every golden case of `tinysam-mobile golden` against TinySAMKit. Run on a Mac:
///   tinysam-mobile golden --out /tmp/golden && TINYSAM_GOLDEN=/tmp/golden swift test
final class GlueGoldenTests: XCTestCase {
    private let coordTolerance: Float = 1e-4

    private func forEachCase(_ kind: String, _ body: (String, [String: GoldenTensor]) throws -> Void) throws {
        let names = try Golden.cases(kind)
        XCTAssertFalse(names.isEmpty, "no \(kind) cases in \(Golden.directory.path)")
        for name in names { try body(name, try Golden.read(name)) }
    }

    private func size(_ t: [String: GoldenTensor], _ key: String) -> Size {
        let v = t[key]!.ints()
        return Size(height: v[0], width: v[1])
    }

    private func prompts(_ t: [String: GoldenTensor]) -> Prompts {
        let box = t["box"]!.floats()
        return Prompts(points: t["points"]!.floats(), labels: t["labels"]!.floats(), box: box.isEmpty ? nil : box)
    }

    private func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float, _ message: String) {
        XCTAssertEqual(a.count, b.count, message)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, message)
    }

    func testPreprocess() throws {
        try forEachCase("preprocess") { name, t in
            let imageTensor = t["image"]!
            let image = RgbImage(width: imageTensor.shape[1], height: imageTensor.shape[0], pixels: imageTensor.bytes())
            let target = t["img_size"]!.ints()[0]
            XCTAssertEqual(resizedShape(height: image.height, width: image.width, target: target), size(t, "resized_shape"), name)
            let resized = resizeLongestSide(image, target: target)
            let expected = t["resized"]!.bytes()
            XCTAssertEqual(zip(expected, resized.pixels).filter { $0 != $1 }.count, 0, "\(name): pixels differing from Pillow")
            let input = preprocess(image, target: target)
            XCTAssertEqual(input.inputSize, size(t, "input_size"), name)
            XCTAssertEqual(input.tensor, t["encoder_input"]!.floats(), "\(name): encoder input not bit-identical")
        }
    }

    func testPredict() throws {
        try forEachCase("predict") { name, t in
            let originalSize = size(t, "original_size")
            let target = t["img_size"]!.ints()[0]
            let decoder = try encodePrompts(prompts(t), originalSize: originalSize, target: target,
                                            numPoints: t["num_points"]!.ints()[0])
            assertClose(decoder.coords, t["decoder_coords"]!.floats(), coordTolerance, "\(name): decoder coords")
            XCTAssertEqual(decoder.labels, t["decoder_labels"]!.floats(), "\(name): decoder labels")
            let lowRes = t["low_res_logits"]!
            let output = DecoderOutput(lowResLogits: lowRes.floats(), iou: t["iou_predictions"]!.floats(), lowResSide: lowRes.shape[3])
            let inputSize = resizedShape(height: originalSize.height, width: originalSize.width, target: target)
            XCTAssertEqual(inputSize, size(t, "input_size"), name)
            let masks = t["masks"]!.bytes()
            let plane = originalSize.height * originalSize.width
            for m in 0..<output.maskCount {
                let mask = output.mask(m, inputSize: inputSize, originalSize: originalSize, target: target)
                let differing = (0..<plane).filter { mask[$0] != (masks[m * plane + $0] == 1) }.count
                XCTAssertEqual(differing, 0, "\(name): mask \(m) pixels differing from Python")
            }
            let best = bestMaskIndex(output.iou)
            XCTAssertEqual(best, t["best_index"]!.ints()[0], name)
            assertClose(output.upscaled(best, inputSize: inputSize, originalSize: originalSize, target: target),
                        t["best_logits"]!.floats(), 1e-5, "\(name): best mask logits")
        }
    }

    func testPromptErrors() throws {
        try forEachCase("prompt_error") { name, t in
            XCTAssertThrowsError(try encodePrompts(prompts(t), originalSize: size(t, "original_size"),
                                                   target: t["img_size"]!.ints()[0], numPoints: t["num_points"]!.ints()[0]),
                                 "\(name): accepted prompts that the Python pipeline refuses")
        }
    }

    /// Replays the recorded decoder answers, checking each call asks for the recorded prompts.
    private final class ReplayDecoder: BatchDecoder {
        let t: [String: GoldenTensor]
        let coords: [Float], labels: [Float], lowRes: [Float], iou: [Float], callSizes: [Int]
        let perPrompt: Int, plane: Int, side: Int
        var call = 0, prompt = 0

        init(_ t: [String: GoldenTensor]) {
            self.t = t
            coords = t["decoder_coords"]!.floats(); labels = t["decoder_labels"]!.floats()
            lowRes = t["low_res_logits"]!.floats(); iou = t["iou_predictions"]!.floats()
            callSizes = t["call_sizes"]!.ints()
            perPrompt = t["decoder_coords"]!.shape[1] * 2
            side = t["low_res_logits"]!.shape[3]
            plane = 3 * side * side
        }

        func decode(coords given: [Float], labels givenLabels: [Float], count: Int) throws -> DecoderOutput {
            XCTAssertEqual(count, callSizes[call], "prompts in decoder call \(call)")
            let expected = Array(coords[prompt * perPrompt..<(prompt + count) * perPrompt])
            XCTAssertLessThanOrEqual(zip(expected, given).map { abs($0 - $1) }.max() ?? 0, 1e-4, "coords of call \(call)")
            XCTAssertEqual(Array(labels[prompt * perPrompt / 2..<(prompt + count) * perPrompt / 2]), givenLabels)
            let output = DecoderOutput(lowResLogits: Array(lowRes[prompt * plane..<(prompt + count) * plane]),
                                       iou: Array(iou[prompt * 3..<(prompt + count) * 3]), lowResSide: side)
            call += 1
            prompt += count
            return output
        }
    }

    func testEverything() throws {
        try forEachCase("everything") { name, t in
            let originalSize = size(t, "original_size")
            let th = t["thresholds"]!.floats()
            var config = EverythingConfig()
            config.pointsPerSide = t["points_per_side"]!.ints()[0]
            config.pointsPerBatch = t["points_per_batch"]!.ints()[0]
            (config.predIouThresh, config.stabilityScoreThresh, config.stabilityScoreOffset) = (th[0], th[1], th[2])
            (config.boxNmsThresh, config.highScoreThresh) = (th[3], th[4])
            let decoder = ReplayDecoder(t)
            let generator = HierarchicalEverything(config: config, decoder: decoder,
                                                   numPoints: t["decoder_coords"]!.shape[1], target: t["img_size"]!.ints()[0])
            let records = try generator.generate(originalSize: originalSize)
            XCTAssertEqual(generator.promptsPerRound, t["prompts_per_round"]!.ints(), name)
            XCTAssertEqual(decoder.call, t["call_sizes"]!.count, name)
            let areas = t["areas"]!.ints(), boxes = t["boxes_xywh"]!.ints(), ious = t["predicted_iou"]!.floats()
            let stability = t["stability"]!.floats(), points = t["point_coords"]!.floats(), masks = t["masks"]!.bytes()
            XCTAssertEqual(records.count, areas.count, "\(name): masks after NMS")
            let plane = originalSize.height * originalSize.width
            for (k, r) in records.enumerated() where k < areas.count {
                XCTAssertEqual(r.area, areas[k], "\(name) area \(k)")
                XCTAssertEqual(r.boxXywh, Array(boxes[4 * k..<4 * k + 4]), "\(name) box \(k)")
                XCTAssertEqual(r.predictedIou, ious[k], "\(name) IoU \(k)")
                XCTAssertEqual(r.stability, stability[k], "\(name) stability \(k)")
                XCTAssertEqual(r.point.x, Double(points[2 * k]), accuracy: 1e-4)
                XCTAssertEqual(r.point.y, Double(points[2 * k + 1]), accuracy: 1e-4)
                let differing = (0..<plane).filter { r.mask[$0] != (masks[k * plane + $0] == 1) }.count
                XCTAssertEqual(differing, 0, "\(name): mask \(k) pixels differing from Python")
            }
        }
    }
}
