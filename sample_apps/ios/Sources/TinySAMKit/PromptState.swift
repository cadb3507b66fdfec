// The prompts a person builds on the photo, kept in photo pixels. Mirrors the Android SegmentView: every
// touch is clamped to the photo first, so a drag that leaves the photo still gives a box the pipeline
// accepts (check_prompts refuses anything outside the image).

/// A touch in photo pixels moved onto the photo: x to [0, width], y to [0, height] (edges included, as
/// check_prompts allows).
public func clampedToImage(x: Double, y: Double, size: Size) -> (x: Float, y: Float) {
    (Float(min(max(x, 0), Double(size.width))), Float(min(max(y, 0), Double(size.height))))
}

/// Taps (positive points), long presses (negative points) and one dragged box on a photo of `imageSize`.
public struct PromptState {
    public let imageSize: Size
    /// (x, y) pairs in photo pixels.
    public private(set) var points: [Float] = []
    public private(set) var labels: [Float] = []
    /// XYXY in photo pixels.
    public private(set) var box: [Float]?

    public init(imageSize: Size) { self.imageSize = imageSize }

    public mutating func addPoint(x: Double, y: Double, positive: Bool) {
        let p = clampedToImage(x: x, y: y, size: imageSize)
        points += [p.x, p.y]
        labels.append(positive ? positiveLabel : negativeLabel)
    }

    /// The box spanned by a drag from start to end, in either direction.
    public mutating func setBox(fromX x0: Double, y0: Double, toX x1: Double, y1: Double) {
        let a = clampedToImage(x: x0, y: y0, size: imageSize), b = clampedToImage(x: x1, y: y1, size: imageSize)
        box = [min(a.x, b.x), min(a.y, b.y), max(a.x, b.x), max(a.y, b.y)]
    }

    public mutating func clear() { points = []; labels = []; box = nil }

    /// The prompts for encodePrompts; no tap is no points (None), as the CLI's parse_points gives.
    public var prompts: Prompts {
        Prompts(points: points.isEmpty ? nil : points, labels: labels.isEmpty ? nil : labels, box: box)
    }
}
