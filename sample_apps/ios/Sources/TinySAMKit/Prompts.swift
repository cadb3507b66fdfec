import Foundation

// Mirror of tinysam_mobile/utils/prompts.py (and Prompts.kt). Labels: -1 padding, 0 negative point,
// 1 positive point, 2 / 3 box corners.

public let padLabel: Float = -1
public let negativeLabel: Float = 0
public let positiveLabel: Float = 1
public let boxLabels: [Float] = [2, 3]

/// A prompt the pipeline refuses; the message is meant for the user.
public struct PromptError: Error, CustomStringConvertible {
    public let description: String
}

/// What the user gave, in original-image pixels: (x, y) pairs with labels 1 / 0, a box XYXY. nil is
/// Python's None; an empty point list is a list of no points (accepted with a box, or alone: the decoder
/// then sees only the padding point), exactly as the reference treats a (0, 2) array.
public struct Prompts {
    public var points: [Float]?
    public var labels: [Float]?
    public var box: [Float]?
    public init(points: [Float]? = nil, labels: [Float]? = nil, box: [Float]? = nil) {
        self.points = points; self.labels = labels; self.box = box
    }
}

/// Decoder inputs: (T, 2) coordinates in the resized frame, flattened, and (T) labels; T tokens, exactly.
public struct DecoderPrompts {
    public let coords: [Float]
    public let labels: [Float]
    /// T: the decoder input shapes are (1, T, 2) and (1, T).
    public var tokens: Int { labels.count }
}

/// Throw PromptError for prompts that are malformed or fall outside the image (same rules as Python).
public func checkPrompts(_ prompts: Prompts, originalSize: Size) throws {
    let h = Double(originalSize.height), w = Double(originalSize.width)
    let sizeText = "\(originalSize.width)x\(originalSize.height)"
    if prompts.points == nil && prompts.box == nil { throw PromptError(description: "give at least one point or a box") }
    if let points = prompts.points {
        guard let labels = prompts.labels else { throw PromptError(description: "point_labels are required with point_coords") }
        if points.count % 2 != 0 || labels.count != points.count / 2 {
            throw PromptError(description: "expected point_coords (N, 2) and point_labels (N,)")
        }
        if labels.contains(where: { $0 != negativeLabel && $0 != positiveLabel }) {
            throw PromptError(description: "point labels must be 1 (foreground) or 0 (background)")
        }
        for i in 0..<labels.count {
            let x = Double(points[2 * i]), y = Double(points[2 * i + 1])
            if !(x >= 0 && x <= w && y >= 0 && y <= h) {
                throw PromptError(description: "point (\(x), \(y)) is outside the \(sizeText) image")
            }
        }
    }
    guard let box = prompts.box else { return }
    if box.count != 4 { throw PromptError(description: "a box is 4 numbers X0,Y0,X1,Y1, got \(box.count)") }
    let (x0, y0, x1, y1) = (Double(box[0]), Double(box[1]), Double(box[2]), Double(box[3]))
    if !(x0 < x1 && y0 < y1) { throw PromptError(description: "box \(box) must have x0 < x1 and y0 < y1") }
    if x0 < 0 || y0 < 0 || x1 > w || y1 > h {
        throw PromptError(description: "box \(box) reaches outside the \(sizeText) image")
    }
}

/// Decoder tokens of a prompt: its points, then two box corners or one padding point (token_count in Python).
public func tokenCount(pointCount: Int, hasBox: Bool) -> Int {
    pointCount + (hasBox ? 2 : 1)
}

/// Exactly the tokens SAM's predictor builds: points first, then the two box corners, or without a box one
/// (0, 0) point with label -1. Nothing else is padded (every padding token takes part in the decoder's
/// attention and changes the masks): the decoder takes T = tokenCount tokens, as (1, T, 2) and (1, T).
/// maxTokens: the most the decoder takes (the manifest's prompt_tokens.max); a longer prompt is refused,
/// never truncated.
public func encodePrompts(_ prompts: Prompts, originalSize: Size, target: Int, maxTokens: Int?) throws -> DecoderPrompts {
    try checkPrompts(prompts, originalSize: originalSize)
    var coords: [Float] = [], labels: [Float] = []
    if let points = prompts.points, let pointLabels = prompts.labels {
        coords = applyCoords(points, originalSize: originalSize, target: target)
        labels = pointLabels
    }
    if let box = prompts.box {
        coords += applyCoords(box, originalSize: originalSize, target: target)
        labels += boxLabels
    } else {
        coords += [0, 0]
        labels.append(padLabel)
    }
    if let maxTokens = maxTokens, labels.count > maxTokens {
        throw PromptError(description: "\(labels.count) prompt tokens (points, then 2 box corners or 1 padding point) " +
                                       "exceed the decoder's \(maxTokens)")
    }
    return DecoderPrompts(coords: coords, labels: labels)
}
