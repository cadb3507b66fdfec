import CoreML
import CoreVideo
import TinySAMKit

/// The three CoreML packages (encoder, interactive decoder, batched everything decoder) behind the
/// glue of TinySAMKit. The encoder takes the resized photo as an RGB pixel buffer padded with the
/// mean colour (normalisation is inside the model, see the manifest's coreml.image_input).
final class CoreMLRuntime {
    let store: ArtifactStore
    private let encoder: MLModel
    private let decoder: MLModel
    private let batchDecoder: MLModel

    init(store: ArtifactStore, computeUnits: MLComputeUnits) async throws {
        self.store = store
        encoder = try await store.model("encoder", computeUnits: computeUnits)
        decoder = try await store.model("decoder", computeUnits: computeUnits)
        batchDecoder = try await store.model("decoder_batch", computeUnits: computeUnits)
    }

    /// Resized photo (PilBilinear, as the Python pipeline) -> padded BGRA pixel buffer -> embedding.
    func encode(resized: RgbImage) throws -> MLMultiArray {
        let side = store.imgSize
        var buffer: CVPixelBuffer?
        CVPixelBufferCreate(nil, side, side, kCVPixelFormatType_32BGRA, nil, &buffer)
        guard let pixels = buffer else { throw ArtifactError("cannot allocate a \(side)x\(side) pixel buffer") }
        CVPixelBufferLockBaseAddress(pixels, [])
        let base = CVPixelBufferGetBaseAddress(pixels)!.assumingMemoryBound(to: UInt8.self)
        let rowBytes = CVPixelBufferGetBytesPerRow(pixels)
        let pad = store.padColor
        for y in 0..<side {
            for x in 0..<side {
                let p = base + y * rowBytes + x * 4
                let inside = x < resized.width && y < resized.height
                let rgb = inside ? (0..<3).map { UInt8(resized.value(x, y, $0)) } : pad
                (p[0], p[1], p[2], p[3]) = (rgb[2], rgb[1], rgb[0], 255)
            }
        }
        CVPixelBufferUnlockBaseAddress(pixels, [])
        let output = try encoder.prediction(from: MLDictionaryFeatureProvider(dictionary: ["image": MLFeatureValue(pixelBuffer: pixels)]))
        return output.featureValue(for: "image_embeddings")!.multiArrayValue!
    }

    private static func array(_ values: [Float], _ shape: [Int]) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: .float32)
        values.withUnsafeBufferPointer { source in
            array.dataPointer.assumingMemoryBound(to: Float.self).update(from: source.baseAddress!, count: values.count)
        }
        return array
    }

    private static func floats(_ array: MLMultiArray) -> [Float] {
        if array.dataType == .float32 {
            return Array(UnsafeBufferPointer(start: array.dataPointer.assumingMemoryBound(to: Float.self), count: array.count))
        }
        return (0..<array.count).map { array[$0].floatValue }
    }

    func decode(embedding: MLMultiArray, prompts: DecoderPrompts) throws -> DecoderOutput {
        let n = prompts.labels.count, low = store.imgSize / 4
        let inputs: [String: Any] = [
            "image_embeddings": embedding,
            "point_coords": try Self.array(prompts.coords, [1, n, 2]),
            "point_labels": try Self.array(prompts.labels, [1, n]),
            "mask_input": try Self.array([Float](repeating: 0, count: low * low), [1, 1, low, low]),
            "has_mask_input": try Self.array([0], [1]),
        ]
        let output = try decoder.prediction(from: MLDictionaryFeatureProvider(dictionary: inputs))
        return DecoderOutput(lowResLogits: Self.floats(output.featureValue(for: "low_res_masks")!.multiArrayValue!),
                             iou: Self.floats(output.featureValue(for: "iou_predictions")!.multiArrayValue!), lowResSide: low)
    }

    /// Everything mode's fixed-batch decoder; a short last batch is padded and its extra outputs dropped.
    func batchDecoder(embedding: MLMultiArray) -> BatchDecoder { Batch(runtime: self, embedding: embedding) }

    private struct Batch: BatchDecoder {
        let runtime: CoreMLRuntime
        let embedding: MLMultiArray

        func decode(coords: [Float], labels: [Float], count: Int) throws -> DecoderOutput {
            let b = runtime.store.everythingBatch, perPrompt = labels.count / count, low = runtime.store.imgSize / 4
            let inputs: [String: Any] = [
                "image_embeddings": embedding,
                "point_coords": try CoreMLRuntime.array(coords + [Float](repeating: 0, count: (b - count) * perPrompt * 2), [b, perPrompt, 2]),
                "point_labels": try CoreMLRuntime.array(labels + [Float](repeating: padLabel, count: (b - count) * perPrompt), [b, perPrompt]),
            ]
            let output = try runtime.batchDecoder.prediction(from: MLDictionaryFeatureProvider(dictionary: inputs))
            let masks = CoreMLRuntime.floats(output.featureValue(for: "low_res_masks")!.multiArrayValue!)
            let iou = CoreMLRuntime.floats(output.featureValue(for: "iou_predictions")!.multiArrayValue!)
            return DecoderOutput(lowResLogits: Array(masks[0..<count * 3 * low * low]), iou: Array(iou[0..<count * 3]), lowResSide: low)
        }
    }
}
