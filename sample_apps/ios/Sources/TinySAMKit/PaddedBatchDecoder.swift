// Everything mode's decoder model has a fixed batch (the manifest's everything_batch) and the last call
// of a round is usually short: mirror of pad_batch in tinysam_mobile/runners/batching.py.

/// A decoder model that takes exactly `batchSize` prompts of `pointsPerPrompt` points per call.
public protocol FixedBatchModel {
    var batchSize: Int { get }
    var pointsPerPrompt: Int { get }
    /// coords (batchSize, pointsPerPrompt, 2) and labels (batchSize, pointsPerPrompt), flattened.
    func decodeBatch(coords: [Float], labels: [Float]) throws -> DecoderOutput
}

/// Fills a short batch by repeating its last prompt (as Python's pad_batch) and drops the extra outputs,
/// so the generator can ask for any count up to the model's batch.
public struct PaddedBatchDecoder: BatchDecoder {
    private let model: FixedBatchModel

    public init(_ model: FixedBatchModel) { self.model = model }

    public func decode(coords: [Float], labels: [Float], count: Int) throws -> DecoderOutput {
        let padding = model.batchSize - count, n = model.pointsPerPrompt
        precondition(count > 0 && padding >= 0, "\(count) prompts for a model batch of \(model.batchSize)")
        let lastCoords = coords.suffix(n * 2), lastLabels = labels.suffix(n)
        let output = try model.decodeBatch(coords: coords + Array((0..<padding).map { _ in lastCoords }.joined()),
                                           labels: labels + Array((0..<padding).map { _ in lastLabels }.joined()))
        let masksPerPrompt = output.maskCount / model.batchSize, plane = output.lowResSide * output.lowResSide
        return DecoderOutput(lowResLogits: Array(output.lowResLogits.prefix(count * masksPerPrompt * plane)),
                             iou: Array(output.iou.prefix(count * masksPerPrompt)), lowResSide: output.lowResSide)
    }
}
