import CoreML
import CoreVideo
import TinySAMKit

/// The three CoreML packages (encoder, interactive decoder, batched everything decoder) behind the
/// glue of TinySAMKit. An actor: preprocessing, the models and the mask upscaling run off the main
/// actor, one request at a time, so the interface stays responsive and shows progress.
/// The encoder takes the resized photo as an RGB pixel buffer padded with the mean colour
/// (normalisation is inside the model, see the manifest's coreml.image_input).
actor CoreMLRuntime {
    let manifest: ArtifactManifest
    private let encoder: MLModel
    private let decoder: MLModel
    private let batchModel: MLModel

    init(store: ArtifactStore, computeUnits: MLComputeUnits) async throws {
        manifest = store.manifest
        encoder = try await store.model("encoder", computeUnits: computeUnits)
        decoder = try await store.model("decoder", computeUnits: computeUnits)
        batchModel = try await store.model("decoder_batch", computeUnits: computeUnits)
    }

    /// Photo -> PilBilinear longest-side resize (as the Python pipeline) -> padded BGRA pixel buffer -> embedding.
    /// Throws ImageError for a photo too elongated to resize, as Python's preprocess does.
    func encode(photo: RgbImage) throws -> MLMultiArray {
        try checkResizable(photo, target: manifest.imgSize)
        let resized = resizeLongestSide(photo, target: manifest.imgSize)
        let side = manifest.imgSize
        var buffer: CVPixelBuffer?
        CVPixelBufferCreate(nil, side, side, kCVPixelFormatType_32BGRA, nil, &buffer)
        guard let pixels = buffer else { throw ArtifactError("cannot allocate a \(side)x\(side) pixel buffer") }
        CVPixelBufferLockBaseAddress(pixels, [])
        let base = CVPixelBufferGetBaseAddress(pixels)!.assumingMemoryBound(to: UInt8.self)
        let rowBytes = CVPixelBufferGetBytesPerRow(pixels)
        let pad = manifest.padColor
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

    /// The prompts -> the best mask at the photo's size and its predicted IoU. The decoder takes exactly the
    /// prompt's T tokens (points, then 2 box corners or 1 padding point), one of its enumerated shapes
    /// (1, T, 2) / (1, T) for T up to manifest.maxTokens; a longer prompt is refused with a PromptError.
    func segment(embedding: MLMultiArray, prompts: Prompts, size: Size) throws -> (mask: [Bool], iou: Float) {
        let target = manifest.imgSize, low = target / 4
        let decoderPrompts = try encodePrompts(prompts, originalSize: size, target: target, maxTokens: manifest.maxTokens)
        let n = decoderPrompts.tokens
        let inputs: [String: Any] = [
            "image_embeddings": embedding,
            "point_coords": try Self.array(decoderPrompts.coords, [1, n, 2]),
            "point_labels": try Self.array(decoderPrompts.labels, [1, n]),
            "mask_input": try Self.array([Float](repeating: 0, count: low * low), [1, 1, low, low]),
            "has_mask_input": try Self.array([0], [1]),
        ]
        let output = try Self.decoderOutput(decoder.prediction(from: MLDictionaryFeatureProvider(dictionary: inputs)), low)
        let best = bestMaskIndex(output.iou)
        let inputSize = resizedShape(height: size.height, width: size.width, target: target)
        return (output.mask(best, inputSize: inputSize, originalSize: size, target: target), output.iou[best])
    }

    /// Everything mode through TinySAMKit's generator; progress(done, planned) after every decoder call.
    func everything(embedding: MLMultiArray, size: Size,
                    progress: @escaping @Sendable (Int, Int) -> Void) throws -> (records: [MaskRecord], promptsPerRound: [Int]) {
        var config = EverythingConfig()
        config.pointsPerBatch = manifest.everythingBatch
        let model = BatchModel(model: batchModel, embedding: embedding, batchSize: manifest.everythingBatch,
                               pointsPerPrompt: manifest.everythingPoints, lowResSide: manifest.imgSize / 4)
        let generator = HierarchicalEverything(config: config, decoder: PaddedBatchDecoder(model),
                                               numPoints: manifest.everythingPoints, target: manifest.imgSize)
        let records = try generator.generate(originalSize: size, progress: progress)
        return (records, generator.promptsPerRound)
    }

    fileprivate static func array(_ values: [Float], _ shape: [Int]) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: .float32)
        values.withUnsafeBufferPointer { source in
            array.dataPointer.assumingMemoryBound(to: Float.self).update(from: source.baseAddress!, count: values.count)
        }
        return array
    }

    /// The values in dense C order whatever the array's strides (CoreML pads rows of some outputs).
    fileprivate static func floats(_ array: MLMultiArray) -> [Float] {
        let shape = array.shape.map(\.intValue), strides = array.strides.map(\.intValue)
        switch array.dataType {
        case .float32:
            let storage = array.dataPointer.assumingMemoryBound(to: Float.self)
            return denseValues(shape: shape, strides: strides) { storage[$0] }
        case .float16:
            let storage = array.dataPointer.assumingMemoryBound(to: Float16.self)
            return denseValues(shape: shape, strides: strides) { Float(storage[$0]) }
        default:
            return denseValues(shape: shape, strides: strides) { array[$0].floatValue }
        }
    }

    fileprivate static func decoderOutput(_ output: MLFeatureProvider, _ lowResSide: Int) -> DecoderOutput {
        DecoderOutput(lowResLogits: floats(output.featureValue(for: "low_res_masks")!.multiArrayValue!),
                      iou: floats(output.featureValue(for: "iou_predictions")!.multiArrayValue!), lowResSide: lowResSide)
    }
}

/// The decoder_batch package: always batchSize prompts; TinySAMKit's PaddedBatchDecoder fills short batches.
private struct BatchModel: FixedBatchModel {
    let model: MLModel
    let embedding: MLMultiArray
    let batchSize: Int
    let pointsPerPrompt: Int
    let lowResSide: Int

    func decodeBatch(coords: [Float], labels: [Float]) throws -> DecoderOutput {
        let inputs: [String: Any] = [
            "image_embeddings": embedding,
            "point_coords": try CoreMLRuntime.array(coords, [batchSize, pointsPerPrompt, 2]),
            "point_labels": try CoreMLRuntime.array(labels, [batchSize, pointsPerPrompt]),
        ]
        return CoreMLRuntime.decoderOutput(try model.prediction(from: MLDictionaryFeatureProvider(dictionary: inputs)), lowResSide)
    }
}
