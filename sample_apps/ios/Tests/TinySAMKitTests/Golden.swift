import Foundation
import TinySAMKit

/// A golden folder, file or tensor that is missing or malformed. Thrown (not a fatalError) so XCTest
/// reports a failing test with this message instead of the test runner dying.
struct GoldenError: Error, CustomStringConvertible {
    let description: String
}

/// One tensor of a golden file (format: tinysam_mobile/golden.py). The files are little-endian, like
/// every platform Swift runs on.
struct GoldenTensor {
    static let float32: UInt8 = 0, uint8: UInt8 = 1, int32: UInt8 = 2

    let name: String
    let dtype: UInt8
    let shape: [Int]
    let data: Data

    var count: Int { shape.reduce(1, *) }

    private func load<T>(_ type: T.Type, dtype expected: UInt8) throws -> [T] {
        guard dtype == expected else { throw GoldenError(description: "\(name): dtype \(dtype), expected \(expected)") }
        return data.withUnsafeBytes { raw in
            (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) }
        }
    }

    func floats() throws -> [Float] { try load(Float.self, dtype: Self.float32) }
    func bytes() throws -> [UInt8] { try load(UInt8.self, dtype: Self.uint8) }
    func ints() throws -> [Int] { try load(Int32.self, dtype: Self.int32).map(Int.init) }
}

/// The named tensors of one case file.
struct GoldenCase {
    let name: String
    let tensors: [String: GoldenTensor]

    func has(_ key: String) -> Bool { tensors[key] != nil }

    func tensor(_ key: String) throws -> GoldenTensor {
        guard let tensor = tensors[key] else { throw GoldenError(description: "\(name) has no tensor '\(key)'") }
        return tensor
    }

    func floats(_ key: String) throws -> [Float] { try tensor(key).floats() }
    func bytes(_ key: String) throws -> [UInt8] { try tensor(key).bytes() }
    func ints(_ key: String) throws -> [Int] { try tensor(key).ints() }
    func shape(_ key: String) throws -> [Int] { try tensor(key).shape }

    func int(_ key: String) throws -> Int {
        let values = try ints(key)
        guard values.count == 1 else { throw GoldenError(description: "\(name): '\(key)' is not a scalar") }
        return values[0]
    }

    /// An int32 (height, width) pair.
    func size(_ key: String) throws -> Size {
        let values = try ints(key)
        guard values.count == 2 else { throw GoldenError(description: "\(name): '\(key)' is not (height, width)") }
        return Size(height: values[0], width: values[1])
    }
}

/// The golden folder written by the Python reference (`tinysam-mobile golden --out DIR`, or
/// tests/test_swift_glue.py in `make test`), named by the TINYSAM_GOLDEN environment variable.
enum Golden {
    static let environmentKey = "TINYSAM_GOLDEN"
    static let magic = "TSGOLD01"

    static func directory() throws -> URL {
        guard let path = ProcessInfo.processInfo.environment[environmentKey], !path.isEmpty else {
            throw GoldenError(description: "set \(environmentKey)=DIR (write it with: tinysam-mobile golden --out DIR)")
        }
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("index.txt").path) else {
            throw GoldenError(description: "\(path) has no index.txt: not a golden folder")
        }
        return url
    }

    /// (kind, file) rows of index.txt, in order.
    static func index() throws -> [(kind: String, file: String)] {
        let text = try String(contentsOf: directory().appendingPathComponent("index.txt"), encoding: .ascii)
        return text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            .filter { $0.count == 2 }.map { (kind: $0[0], file: $0[1]) }
    }

    /// Every case of one kind, read; a kind with no case is an error (the folder is not what the test expects).
    static func cases(_ kind: String) throws -> [GoldenCase] {
        let files = try index().filter { $0.kind == kind }.map(\.file)
        guard !files.isEmpty else { throw GoldenError(description: "no '\(kind)' cases in \(try directory().path)") }
        return try files.map(read)
    }

    static func read(_ file: String) throws -> GoldenCase {
        let data = try Data(contentsOf: directory().appendingPathComponent(file))
        var reader = Reader(data: data, file: file)
        guard String(data: try reader.take(8), encoding: .ascii) == magic else {
            throw GoldenError(description: "\(file) is not a golden vector file")
        }
        var tensors: [String: GoldenTensor] = [:]
        for _ in 0..<(try reader.integer(UInt32.self)) {
            let nameLength = try reader.integer(UInt16.self)
            guard let key = String(data: try reader.take(nameLength), encoding: .ascii) else {
                throw GoldenError(description: "\(file): tensor name is not ASCII")
            }
            let dtype = UInt8(try reader.integer(UInt8.self)), rank = try reader.integer(UInt8.self)
            let shape = try (0..<rank).map { _ in try reader.integer(UInt32.self) }
            let itemSize = dtype == GoldenTensor.uint8 ? 1 : 4
            tensors[key] = GoldenTensor(name: "\(file):\(key)", dtype: dtype, shape: shape,
                                        data: try reader.take(shape.reduce(1, *) * itemSize))
        }
        return GoldenCase(name: file, tensors: tensors)
    }

    /// Sequential little-endian reads that throw on a truncated file.
    private struct Reader {
        let data: Data
        let file: String
        var position = 0

        mutating func take(_ count: Int) throws -> Data {
            guard position + count <= data.count else { throw GoldenError(description: "\(file) is truncated") }
            defer { position += count }
            return data.subdata(in: data.startIndex + position..<data.startIndex + position + count)
        }

        mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> Int {
            let bytes = try take(MemoryLayout<T>.size)
            return Int(T(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }))
        }
    }
}
