// Mirror of the parts of tinysam_mobile/utils/amg.py the hierarchical generator uses (and Amg.kt).

/// A prompt point (x, y) in original-image pixels, in double precision like the Python grid.
public struct Point: Hashable {
    public let x: Double
    public let y: Double
    public init(x: Double, y: Double) { self.x = x; self.y = y }
}

/// Round-2 offsets in lattice strides (dx, dy), in the public generator's order: the 3x3 block minus
/// the point, then the +2 column, the +2 row and the +2 corner.
public let hierarchyOffsets: [(Int, Int)] =
    (-1...1).flatMap { dx in (-1...1).map { dy in (dx, dy) } }.filter { $0 != (0, 0) }
    + (-1...1).map { (2, $0) } + (-1...1).map { ($0, 2) } + [(2, 2)]

/// Round 2 is this many times denser than round 1.
public let round1Divisor = 4

/// n*n points at ((i + 0.5) / n * w, (j + 0.5) / n * h), x varying fastest.
public func gridInPixels(_ n: Int, size: Size) -> [Point] {
    (0..<n).flatMap { j in
        (0..<n).map { i in
            Point(x: (Double(i) + 0.5) / Double(n) * Double(size.width), y: (Double(j) + 0.5) / Double(n) * Double(size.height))
        }
    }
}

/// (x, y) strides of the round-2 lattice: side / pointsPerSide, at least one pixel.
public func hierarchyStrides(_ size: Size, pointsPerSide: Int) -> (Int, Int) {
    (max(size.width / pointsPerSide, 1), max(size.height / pointsPerSide, 1))
}

/// Round-2 candidates around each round-1 point, inside the image, without repeats or round-1 points.
public func hierarchyCandidates(_ round1: [Point], size: Size, pointsPerSide: Int) -> [Point] {
    let (sx, sy) = hierarchyStrides(size, pointsPerSide: pointsPerSide)
    // + 0.0 turns -0.0 into 0.0, which numpy's unique treats as equal.
    var seen = Set(round1.map { Point(x: $0.x + 0.0, y: $0.y + 0.0) })
    var out: [Point] = []
    for p in round1 {
        for (dx, dy) in hierarchyOffsets {
            let c = Point(x: p.x + Double(dx * sx) + 0.0, y: p.y + Double(dy * sy) + 0.0)
            if c.x >= 0 && c.y >= 0 && c.x < Double(size.width) && c.y < Double(size.height) && seen.insert(c).inserted {
                out.append(c)
            }
        }
    }
    return out
}

/// covered (row-major h x w) at the pixel holding the point (coordinates floored).
public func coveredAt(_ covered: [Bool], width: Int, _ p: Point) -> Bool { covered[Int(p.y) * width + Int(p.x)] }

/// IoU of (logit > threshold + offset) and (logit > threshold - offset); NaN when the second is empty.
public func stabilityScore(_ logits: [Float], maskThreshold: Float, offset: Float) -> Float {
    var inner = 0, outer = 0
    for v in logits {
        if v > maskThreshold + offset { inner += 1 }
        if v > maskThreshold - offset { outer += 1 }
    }
    return Float(inner) / Float(outer)
}

/// Inclusive XYXY pixel box of a row-major mask; (0, 0, 0, 0) when empty.
public func maskBox(_ mask: [Bool], width: Int) -> [Int] {
    var x0 = Int.max, y0 = Int.max, x1 = -1, y1 = -1
    for (i, on) in mask.enumerated() where on {
        let x = i % width, y = i / width
        x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
    }
    return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1, y1]
}

/// IoU of two XYXY boxes in float32 with torchvision's arithmetic (areas without +1).
public func boxIou(_ a: [Int], _ b: [Int]) -> Float {
    let areaA = (Float(a[2]) - Float(a[0])) * (Float(a[3]) - Float(a[1]))
    let areaB = (Float(b[2]) - Float(b[0])) * (Float(b[3]) - Float(b[1]))
    let w = max(Float(min(a[2], b[2])) - Float(max(a[0], b[0])), 0)
    let h = max(Float(min(a[3], b[3])) - Float(max(a[1], b[1])), 0)
    let inter = w * h
    return inter / (areaA + areaB - inter)
}

/// Greedy NMS (torchvision.ops.nms semantics): kept indices, best score first, ties in input order.
public func boxNms(_ boxes: [[Int]], scores: [Float], iouThreshold: Float) -> [Int] {
    // Sorting (score, index) pairs makes the order stable for equal scores.
    let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
    var suppressed = [Bool](repeating: false, count: order.count)
    var kept: [Int] = []
    for i in order.indices where !suppressed[i] {
        kept.append(order[i])
        for j in (i + 1)..<order.count where !suppressed[j] && boxIou(boxes[order[i]], boxes[order[j]]) > iouThreshold {
            suppressed[j] = true
        }
    }
    return kept
}
