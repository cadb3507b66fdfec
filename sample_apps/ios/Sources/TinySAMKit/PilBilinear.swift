import Foundation

/// Pillow's Image.resize(size, BILINEAR) on 8-bit RGB, bit for bit (Pillow 13's Resample.c).
///
/// The triangle filter's support grows with the downscale factor (antialiasing); weights are rounded
/// to fixed point and the two 1-D passes go through an 8-bit intermediate, in the order Pillow picks.
/// CoreImage, vImage or UIGraphics scaling give different pixels. Mirrors PilBilinear.kt.
public enum PilBilinear {
    private static let precisionBits: Int32 = 32 - 8 - 2
    private static let rounding: Int32 = 1 << (precisionBits - 1)

    private struct Coefficients {
        var first: [Int]
        var count: [Int]
        var kernelSize: Int
        var weights: [Int32]
    }

    private static func triangle(_ x: Double) -> Double {
        let a = x < 0 ? -x : x
        return a < 1.0 ? 1.0 - a : 0.0
    }

    private static func coefficients(_ inSize: Int, _ outSize: Int) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = scale < 1.0 ? 1.0 : scale
        let support = 1.0 * filterScale
        let kernelSize = Int(support.rounded(.up)) * 2 + 1
        var c = Coefficients(first: [Int](repeating: 0, count: outSize), count: [Int](repeating: 0, count: outSize),
                             kernelSize: kernelSize, weights: [Int32](repeating: 0, count: outSize * kernelSize))
        var taps = [Double](repeating: 0, count: kernelSize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1.0 / filterScale
            // Pillow rounds the window ends by truncating value + 0.5, then clamps to the image.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<max(xmax, 0) {
                let w = triangle((Double(x + xmin) - center + 0.5) * ss)
                taps[x] = w
                total += w
            }
            for x in 0..<max(xmax, 0) {
                let w = total != 0.0 ? taps[x] / total : taps[x]
                let fixed = w * Double(1 << precisionBits)
                c.weights[xx * kernelSize + x] = Int32(w < 0 ? -0.5 + fixed : 0.5 + fixed)
            }
            c.first[xx] = xmin
            c.count[xx] = xmax
        }
        return c
    }

    @inline(__always) private static func clip8(_ v: Int32) -> UInt8 {
        if v >= (1 << precisionBits) << 8 { return 255 }
        if v <= 0 { return 0 }
        return UInt8(v >> precisionBits)
    }

    public static func resize(_ image: RgbImage, width newWidth: Int, height newHeight: Int) -> RgbImage {
        precondition(newWidth > 0 && newHeight > 0, "resize to an empty size")
        let needHorizontal = newWidth != image.width
        let needVertical = newHeight != image.height
        if !needHorizontal && !needVertical { return image }
        let horizontal = coefficients(image.width, newWidth)
        var vertical = coefficients(image.height, newHeight)
        // Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice what
        // the width does; the 8-bit intermediate makes the order visible in the result.
        let shrinkY = image.height - newHeight
        let horizontalFirst = !(shrinkY > 0 && shrinkY > (image.width - newWidth) * 2)
        if !horizontalFirst {
            let columns = needVertical ? resizeColumns(image, vertical, newHeight) : image
            return needHorizontal ? resizeRows(columns, horizontal, 0, newHeight, newWidth) : columns
        }
        var current = image
        if needHorizontal {
            // Only the rows the vertical pass reads, as Pillow does.
            let firstRow = vertical.first[0]
            let lastRow = vertical.first[newHeight - 1] + vertical.count[newHeight - 1]
            current = resizeRows(image, horizontal, firstRow, lastRow, newWidth)
            for i in 0..<newHeight { vertical.first[i] -= firstRow }
        }
        return needVertical ? resizeColumns(current, vertical, newHeight) : current
    }

    private static func resizeRows(_ src: RgbImage, _ k: Coefficients, _ firstRow: Int, _ lastRow: Int,
                                   _ newWidth: Int) -> RgbImage {
        let rows = lastRow - firstRow
        var out = [UInt8](repeating: 0, count: newWidth * rows * 3)
        for y in 0..<rows {
            for xx in 0..<newWidth {
                for c in 0..<3 {
                    var sum = rounding
                    for x in 0..<k.count[xx] {
                        sum &+= src.value(x + k.first[xx], y + firstRow, c) &* k.weights[xx * k.kernelSize + x]
                    }
                    out[(y * newWidth + xx) * 3 + c] = clip8(sum)
                }
            }
        }
        return RgbImage(width: newWidth, height: rows, pixels: out)
    }

    private static func resizeColumns(_ src: RgbImage, _ k: Coefficients, _ newHeight: Int) -> RgbImage {
        var out = [UInt8](repeating: 0, count: src.width * newHeight * 3)
        for yy in 0..<newHeight {
            for x in 0..<src.width {
                for c in 0..<3 {
                    var sum = rounding
                    for y in 0..<k.count[yy] {
                        sum &+= src.value(x, y + k.first[yy], c) &* k.weights[yy * k.kernelSize + y]
                    }
                    out[(yy * src.width + x) * 3 + c] = clip8(sum)
                }
            }
        }
        return RgbImage(width: src.width, height: newHeight, pixels: out)
    }
}
