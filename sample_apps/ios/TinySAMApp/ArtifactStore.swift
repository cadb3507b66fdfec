import CoreML
import CryptoKit
import Foundation

/// A problem with the bundled artifacts, worded for the person running the app.
struct ArtifactError: LocalizedError {
    let errorDescription: String?
    init(_ message: String) { errorDescription = message }
}

/// Artifacts/ in the app bundle: manifest.json and the .mlpackage folders it lists, as
/// `tinysam-mobile install-artifacts OUT --app ios` writes them. Checked at start-up (format version,
/// target, each package's size and SHA-256 with the manifest's directory hashing), then compiled once.
struct ArtifactStore {
    static let formatVersion = 1
    let root: URL
    let imgSize: Int
    let numPoints: Int
    let everythingBatch: Int
    let precision: String
    let padColor: [UInt8]
    let files: [String: String]  // role -> package folder
    let hashes: [String: String]  // role -> SHA-256 (names the compiled-model cache)

    static func load(bundle: Bundle = .main) throws -> ArtifactStore {
        guard let root = bundle.url(forResource: "Artifacts", withExtension: nil),
              let data = try? Data(contentsOf: root.appendingPathComponent("manifest.json")) else {
            throw ArtifactError("No TinySAM artifacts in the app. Run: tinysam-mobile convert --target coreml --out OUT, " +
                                "then tinysam-mobile install-artifacts OUT --app ios, and build again.")
        }
        guard let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ArtifactError("manifest.json is not valid JSON")
        }
        let version = manifest["format_version"] as? Int ?? -1
        guard version == formatVersion else {
            throw ArtifactError("manifest format version \(version); this app reads version \(formatVersion). Convert again.")
        }
        guard manifest["target"] as? String == "coreml" else {
            throw ArtifactError("the bundled artifacts are for '\(manifest["target"] ?? "?")', this app runs 'coreml'")
        }
        var files: [String: String] = [:], hashes: [String: String] = [:]
        for record in manifest["artifacts"] as? [[String: Any]] ?? [] {
            guard let file = record["file"] as? String, let role = record["role"] as? String else { continue }
            let url = root.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ArtifactError("\(file) is listed in manifest.json but missing from the app bundle")
            }
            let (sha, size) = try directorySHA256(url)
            guard sha == record["sha256"] as? String, size == record["size_bytes"] as? Int else {
                throw ArtifactError("\(file) does not match its manifest hash (modified or from another conversion); install again")
            }
            files[role] = file
            hashes[role] = sha
        }
        for role in ["encoder", "decoder", "decoder_batch"] where files[role] == nil {
            throw ArtifactError("manifest lists no '\(role)' artifact")
        }
        let preprocessing = manifest["preprocessing"] as? [String: Any] ?? [:]
        let imageInput = (manifest["coreml"] as? [String: Any])?["image_input"] as? [String: Any]
        return ArtifactStore(root: root, imgSize: preprocessing["input_size"] as? Int ?? 1024,
                             numPoints: manifest["num_points"] as? Int ?? 8,
                             everythingBatch: manifest["everything_batch"] as? Int ?? 64,
                             precision: manifest["precision"] as? String ?? "?",
                             padColor: (imageInput?["pad_color_rgb"] as? [Int] ?? [124, 116, 104]).map { UInt8($0) },
                             files: files, hashes: hashes)
    }

    /// SHA-256 as converters/manifest.py path_sha256 computes it for a folder: every file in Python's
    /// path order (component by component), its relative path, a zero byte, then its bytes.
    static func directorySHA256(_ url: URL) throws -> (String, Int) {
        let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])!
        var relative: [[String]] = []
        for case let file as URL in enumerator where (try file.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            relative.append(Array(file.standardizedFileURL.pathComponents.dropFirst(url.standardizedFileURL.pathComponents.count)))
        }
        relative.sort { $0.lexicographicallyPrecedes($1) { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } }
        var hasher = SHA256()
        var size = 0
        for parts in relative {
            hasher.update(data: Data(parts.joined(separator: "/").utf8) + Data([0]))
            let data = try Data(contentsOf: parts.reduce(url) { $0.appendingPathComponent($1) }, options: .mappedIfSafe)
            hasher.update(data: data)
            size += data.count
        }
        return (hasher.finalize().map { String(format: "%02x", $0) }.joined(), size)
    }

    /// Compiles the package once (cached under Application Support by the package's hash) and loads it.
    func model(_ role: String, computeUnits: MLComputeUnits) async throws -> MLModel {
        let package = root.appendingPathComponent(files[role]!)
        let cache = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                appropriateFor: nil, create: true)
            .appendingPathComponent("TinySAM-\(hashes[role]!.prefix(16)).mlmodelc")
        if !FileManager.default.fileExists(atPath: cache.path) {
            let compiled = try await MLModel.compileModel(at: package)
            try? FileManager.default.removeItem(at: cache)
            try FileManager.default.moveItem(at: compiled, to: cache)
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        return try await MLModel.load(contentsOf: cache, configuration: configuration)
    }
}
