// CoreML may hand back an MLMultiArray whose rows are padded (strides larger than the shape implies,
// common for fp16 outputs on the Neural Engine): reading count values from dataPointer then mixes padding
// into the logits. The app reads elements through this pure function, which Linux tests can check.

/// The values of a strided tensor in dense C order. `element(offset)` reads the storage at an element
/// offset (so the caller can read float32 or float16); shape and strides are in elements.
public func denseValues(shape: [Int], strides: [Int], element: (Int) -> Float) -> [Float] {
    precondition(shape.count == strides.count, "shape \(shape) and strides \(strides) differ in rank")
    let count = shape.reduce(1, *)
    var out = [Float](repeating: 0, count: count)
    var index = [Int](repeating: 0, count: shape.count)
    for i in 0..<count {
        out[i] = element(zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 })
        // Advance the multi-index, last axis fastest.
        var axis = shape.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
    return out
}
