import Foundation

// manifest.json of the CoreML artifacts (converters/manifest.py, converters/coreml.py), read and checked
// before anything is loaded: the settings the glue depends on (input size, prompt-token counts, batch) come
// from here, and a manifest that disagrees with itself or with what the converter can write is refused. The
// packages' hashes are checked by the app (CryptoKit is Apple-only).

/// A manifest the app refuses; the description is meant for the person running the app.
public struct ManifestError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

public struct ArtifactManifest {
    public static let formatVersion = 1
    /// converters/coreml.py PRECISIONS.
    public static let precisions: Set<String> = ["fp16", "fp32", "int8", "palettize4", "palettize6", "palettize8", "w8a8"]
    public static let roles = ["encoder", "decoder", "decoder_batch"]

    /// One package: its folder and the hash and size the app checks it against.
    public struct Artifact {
        public let file: String
        public let sha256: String
        public let sizeBytes: Int
    }

    public let precision: String
    public let imgSize: Int
    /// Prompt tokens the interactive decoder takes (prompt_tokens): every T from minTokens to maxTokens,
    /// exactly (points, then 2 box corners or 1 padding point; nothing padded up to maxTokens).
    public let minTokens: Int
    public let maxTokens: Int
    /// Prompts per call of the everything-mode decoder, and points per prompt.
    public let everythingBatch: Int
    public let everythingPoints: Int
    /// The encoder's padding colour (the mean, normalised to zero inside the model).
    public let padColor: [UInt8]
    public let artifacts: [String: Artifact]

    public init(json data: Data) throws {
        guard let manifest = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ManifestError("manifest.json is not a JSON object")
        }
        let version = manifest["format_version"] as? Int
        guard version == Self.formatVersion else {
            throw ManifestError("manifest format version \(version.map(String.init) ?? "?"); this app reads version " +
                                "\(Self.formatVersion). Convert again.")
        }
        guard let target = manifest["target"] as? String, target == "coreml" else {
            throw ManifestError("the artifacts are for '\(manifest["target"] ?? "?")', this app runs 'coreml'")
        }
        guard let precision = manifest["precision"] as? String, Self.precisions.contains(precision) else {
            throw ManifestError("unknown CoreML precision '\(manifest["precision"] ?? "?")'")
        }
        guard let imgSize = (manifest["preprocessing"] as? [String: Any])?["input_size"] as? Int, imgSize > 0 else {
            throw ManifestError("manifest has no preprocessing.input_size")
        }
        // The converter's own limits: every count from 1 (an empty point list: the padding point alone) to a
        // maximum of at least 3 (a point and a box).
        let tokens = manifest["prompt_tokens"] as? [String: Any]
        guard let minTokens = tokens?["min"] as? Int, let maxTokens = tokens?["max"] as? Int,
              minTokens == 1, maxTokens >= 3 else {
            throw ManifestError("prompt_tokens must be {\"min\": 1, \"max\": 3 or more}, got \(manifest["prompt_tokens"] ?? "none")")
        }
        guard let batch = manifest["everything_batch"] as? Int, batch >= 1 else {
            throw ManifestError("everything_batch must be at least 1, got \(manifest["everything_batch"] ?? "none")")
        }
        let imageInput = ((manifest["coreml"] as? [String: Any])?["image_input"] as? [String: Any])?["pad_color_rgb"] as? [Int]
        guard let pad = imageInput, pad.count == 3, pad.allSatisfy({ (0...255).contains($0) }) else {
            throw ManifestError("manifest has no coreml.image_input.pad_color_rgb")
        }
        let records = manifest["artifacts"] as? [[String: Any]] ?? []
        var artifacts: [String: Artifact] = [:], pointShapes: [String: [Int]] = [:]
        var decoderInputs: [[String: Any]] = []
        for record in records {
            guard let role = record["role"] as? String, let file = record["file"] as? String,
                  let sha = record["sha256"] as? String, let size = record["size_bytes"] as? Int else {
                throw ManifestError("an artifact record lacks role, file, sha256 or size_bytes")
            }
            artifacts[role] = Artifact(file: file, sha256: sha, sizeBytes: size)
            let inputs = record["inputs"] as? [[String: Any]] ?? []
            pointShapes[role] = inputs.first { $0["name"] as? String == "point_coords" }?["shape"] as? [Int]
            if role == "decoder" { decoderInputs = inputs }
        }
        for role in Self.roles where artifacts[role] == nil { throw ManifestError("manifest lists no '\(role)' artifact") }
        // The interactive decoder must take every token count the manifest announces, exactly: its point
        // inputs enumerate (1, T, 2) and (1, T) for T = minTokens...maxTokens. A fixed-shape decoder (no
        // enumerated shapes) wants prompts padded to its size, which changes the masks: refused.
        let counts = Array(minTokens...maxTokens)
        let tokenShapes: [(String, (Int) -> [Int])] = [("point_coords", { [1, $0, 2] }), ("point_labels", { [1, $0] })]
        for (name, shape) in tokenShapes {
            let listed = decoderInputs.first { $0["name"] as? String == name }?["enumerated_shapes"] as? [[Int]]
            guard listed == counts.map(shape) else {
                throw ManifestError("the decoder takes \(name) of shapes \(listed.map { "\($0)" } ?? "fixed, not enumerated"), " +
                                    "the manifest says \(minTokens) to \(maxTokens) prompt tokens")
            }
        }
        guard let batchShape = pointShapes["decoder_batch"], batchShape.count == 3, batchShape[0] == batch,
              batchShape[2] == 2, batchShape[1] >= 1 else {
            throw ManifestError("the batched decoder takes point_coords \(pointShapes["decoder_batch"] ?? []), " +
                                "the manifest says batches of \(batch)")
        }
        self.precision = precision
        self.imgSize = imgSize
        self.minTokens = minTokens
        self.maxTokens = maxTokens
        self.everythingBatch = batch
        self.everythingPoints = batchShape[1]
        self.padColor = pad.map(UInt8.init)
        self.artifacts = artifacts
    }
}
