/// An image the pipeline cannot take (Python's ImageError); the description is meant for the user.
public enum ImageError: Error, Equatable, CustomStringConvertible {
    /// The short side would shrink to 0 pixels in the longest-side resize.
    case tooElongated(width: Int, height: Int, target: Int)

    public var description: String {
        switch self {
        case let .tooElongated(width, height, target):
            return "a \(width)x\(height) image is too elongated: its short side would shrink to 0 pixels at \(target)"
        }
    }
}
