import Foundation

/// Reader of the golden vectors written by `tinysam-mobile golden` (format: tinysam_mobile/golden.py).
struct GoldenTensor {
    let dtype: UInt8
    let shape: [Int]
    let data: Data

    var count: Int { shape.reduce(1, *) }

    private func load<T>(_ type: T.Type) -> [T] {
        data.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) } }
    }

    // The files are little-endian, like every Apple platform.
    func floats() -> [Float] { precondition(dtype == 0); return load(Float.self) }
    func bytes() -> [UInt8] { precondition(dtype == 1); return [UInt8](data) }
    func ints() -> [Int] { precondition(dtype == 2); return load(Int32.self).map(Int.init) }
}

enum Golden {
    static var directory: URL {
        guard let path = ProcessInfo.processInfo.environment["TINYSAM_GOLDEN"] else {
            fatalError("set TINYSAM_GOLDEN=DIR (write it with: tinysam-mobile golden --out DIR)")
        }
        return URL(fileURLWithPath: path)
    }

    /// Case files of one kind, in index order.
    static func cases(_ kind: String) throws -> [String] {
        try String(contentsOf: directory.appendingPathComponent("index.txt"), encoding: .ascii)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            .filter { $0.count == 2 && $0[0] == kind }.map { $0[1] }
    }

    static func read(_ name: String) throws -> [String: GoldenTensor] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        var pos = 0
        func take(_ n: Int) -> Data { defer { pos += n }; return data.subdata(in: pos..<pos + n) }
        func u32() -> Int { Int(take(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) }
        precondition(String(data: take(8), encoding: .ascii) == "TSGOLD01", "\(name) is not a golden vector file")
        var out: [String: GoldenTensor] = [:]
        for _ in 0..<u32() {
            let nameLength = Int(take(2).withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) })
            let key = String(data: take(nameLength), encoding: .ascii)!
            let header = take(2)
            let dtype = header[header.startIndex], rank = Int(header[header.startIndex + 1])
            let shape = (0..<rank).map { _ in u32() }
            let itemSize = dtype == 1 ? 1 : 4
            out[key] = GoldenTensor(dtype: dtype, shape: shape, data: take(shape.reduce(1, *) * itemSize))
        }
        return out
    }
}
