// Mirror of TinySamHierarchicalMaskGenerator (tinysam_mobile/automatic_mask_generator.py) and of
// HierarchicalEverything.kt: round 1 decodes a (pointsPerSide / 4)^2 grid and marks where kept masks
// are confident (logit > highScoreThresh); round 2 decodes the uncovered lattice points; one box NMS.

public struct EverythingConfig {
    public var pointsPerSide = 32
    public var pointsPerBatch = 64
    public var predIouThresh: Float = 0.88
    public var stabilityScoreThresh: Float = 0.95
    public var stabilityScoreOffset: Float = 1.0
    public var boxNmsThresh: Float = 0.7
    public var highScoreThresh: Float = 8.5
    public init() {}
}

/// The batched decoder (the app's decoder_batch model): count single-point prompts -> count x 3 masks.
public protocol BatchDecoder {
    func decode(coords: [Float], labels: [Float], count: Int) throws -> DecoderOutput
}

/// One mask of "everything": row-major boolean mask at the original size and SAM's record fields.
public struct MaskRecord {
    public let mask: [Bool]
    public let area: Int
    public let boxXywh: [Int]
    public let predictedIou: Float
    public let stability: Float
    public let point: Point
}

public final class HierarchicalEverything {
    private struct Candidate { let mask: [Bool]; let box: [Int]; let iou: Float; let stability: Float; let point: Point }

    private let config: EverythingConfig
    private let decoder: BatchDecoder
    private let numPoints: Int
    private let target: Int
    /// Prompts per round of the last generate() call.
    public private(set) var promptsPerRound: [Int] = []

    public init(config: EverythingConfig, decoder: BatchDecoder, numPoints: Int, target: Int) {
        self.config = config; self.decoder = decoder; self.numPoints = numPoints; self.target = target
    }

    public func generate(originalSize: Size, progress: (Int, Int) -> Void = { _, _ in }) throws -> [MaskRecord] {
        promptsPerRound = []
        let inputSize = resizedShape(height: originalSize.height, width: originalSize.width, target: target)
        let round1 = gridInPixels(config.pointsPerSide / round1Divisor, size: originalSize)
        let lattice = hierarchyCandidates(round1, size: originalSize, pointsPerSide: config.pointsPerSide)
        var covered = [Bool](repeating: false, count: originalSize.height * originalSize.width)
        let first = try decodePoints(round1, originalSize, inputSize, round1.count + lattice.count, &covered, true, progress)
        let round2 = lattice.filter { !coveredAt(covered, width: originalSize.width, $0) }
        let second = try decodePoints(round2, originalSize, inputSize, round1.count + round2.count, &covered, false, progress)
        let candidates = first + second
        let keep = boxNms(candidates.map { $0.box }, scores: candidates.map { $0.iou }, iouThreshold: config.boxNmsThresh)
        return keep.map { i in
            let c = candidates[i]
            return MaskRecord(mask: c.mask, area: c.mask.reduce(0) { $0 + ($1 ? 1 : 0) },
                              boxXywh: [c.box[0], c.box[1], c.box[2] - c.box[0], c.box[3] - c.box[1]],
                              predictedIou: c.iou, stability: c.stability, point: c.point)
        }
    }

    private func decodePoints(_ points: [Point], _ originalSize: Size, _ inputSize: Size, _ planned: Int,
                              _ covered: inout [Bool], _ markCovered: Bool, _ progress: (Int, Int) -> Void) throws -> [Candidate] {
        let done = promptsPerRound.reduce(0, +)
        promptsPerRound.append(points.count)
        var out: [Candidate] = []
        for start in stride(from: 0, to: points.count, by: config.pointsPerBatch) {
            let chunk = Array(points[start..<min(start + config.pointsPerBatch, points.count)])
            out += try decodeBatch(chunk, originalSize, inputSize, &covered, markCovered)
            progress(done + start + chunk.count, planned)
        }
        return out
    }

    private func decodeBatch(_ points: [Point], _ originalSize: Size, _ inputSize: Size, _ covered: inout [Bool],
                             _ markCovered: Bool) throws -> [Candidate] {
        // One positive point per prompt, the rest padding: the predictor's single-click prompt.
        let scaled = applyCoords(points.flatMap { [Float($0.x), Float($0.y)] }, originalSize: originalSize, target: target)
        var coords = [Float](repeating: 0, count: points.count * numPoints * 2)
        var labels = [Float](repeating: padLabel, count: points.count * numPoints)
        for p in points.indices {
            coords[p * numPoints * 2] = scaled[2 * p]
            coords[p * numPoints * 2 + 1] = scaled[2 * p + 1]
            labels[p * numPoints] = positiveLabel
        }
        let output = try decoder.decode(coords: coords, labels: labels, count: points.count)
        let masksPerPrompt = output.maskCount / points.count
        var out: [Candidate] = []
        for m in 0..<output.maskCount {
            // The IoU filter needs no upsampled mask: only survivors are upsampled.
            if config.predIouThresh > 0 && !(output.iou[m] > config.predIouThresh) { continue }
            let logits = output.upscaled(m, inputSize: inputSize, originalSize: originalSize, target: target)
            let stability = stabilityScore(logits, maskThreshold: maskThreshold, offset: config.stabilityScoreOffset)
            if config.stabilityScoreThresh > 0 && !(stability >= config.stabilityScoreThresh) { continue }
            if markCovered { for i in logits.indices where logits[i] > config.highScoreThresh { covered[i] = true } }
            let mask = threshold(logits)
            out.append(Candidate(mask: mask, box: maskBox(mask, width: originalSize.width), iou: output.iou[m],
                                 stability: stability, point: points[m / masksPerPrompt]))
        }
        return out
    }
}
