import CoreML
import CryptoKit
import Foundation
import TinySAMKit

/// A problem with the bundled artifacts, worded for the person running the app.
struct ArtifactError: LocalizedError {
    let errorDescription: String?
    init(_ message: String) { errorDescription = message }
}

/// Artifacts/ in the app bundle: manifest.json and the .mlpackage folders it lists, as
/// `tinysam-mobile install-artifacts OUT --app ios` writes them. The manifest is read and checked by
/// TinySAMKit's ArtifactManifest (tested on Linux); here each package's size and SHA-256 are checked
/// with the manifest's directory hashing, then the packages are compiled once.
struct ArtifactStore {
    let root: URL
    let manifest: ArtifactManifest

    static func load(bundle: Bundle = .main) throws -> ArtifactStore {
        guard let root = bundle.url(forResource: "Artifacts", withExtension: nil),
              let data = try? Data(contentsOf: root.appendingPathComponent("manifest.json")) else {
            throw ArtifactError("No TinySAM artifacts in the app. Run: tinysam-mobile convert --target coreml --out OUT, " +
                                "then tinysam-mobile install-artifacts OUT --app ios, and build again.")
        }
        let manifest: ArtifactManifest
        do { manifest = try ArtifactManifest(json: data) } catch { throw ArtifactError("manifest.json: \(error)") }
        for artifact in manifest.artifacts.values {
            let url = root.appendingPathComponent(artifact.file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ArtifactError("\(artifact.file) is listed in manifest.json but missing from the app bundle")
            }
            let (sha, size) = try directorySHA256(url)
            guard sha == artifact.sha256, size == artifact.sizeBytes else {
                throw ArtifactError("\(artifact.file) does not match its manifest hash (modified or from another conversion); install again")
            }
        }
        return ArtifactStore(root: root, manifest: manifest)
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
        let artifact = manifest.artifacts[role]!  // ArtifactManifest refuses a manifest without every role
        let package = root.appendingPathComponent(artifact.file)
        let cache = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                appropriateFor: nil, create: true)
            .appendingPathComponent("TinySAM-\(artifact.sha256.prefix(16)).mlmodelc")
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
