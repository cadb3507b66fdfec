import Accelerate
import Foundation
import ImageIO
import TinySAMKit

/// Reads a photo as the Python reference's load_image does: the stored pixels decoded to straight
/// (not premultiplied) 8-bit RGBA in sRGB, then TinySAMKit's uprightRgb applies the EXIF orientation and
/// flattens transparency onto white (both tested on Linux against Pillow). Drawing into a DeviceRGB
/// context instead turned transparent areas black and left colour management to the device.
enum PhotoReader {
    static func rgb(of data: Data) throws -> RgbImage {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil),
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else {
            throw ArtifactError("not a readable image")
        }
        let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any]
        let orientation = (properties?[kCGImagePropertyOrientation] as? NSNumber)?.intValue ?? 1
        guard let sRGB = CGColorSpace(name: CGColorSpace.sRGB),
              let format = vImage_CGImageFormat(bitsPerComponent: 8, bitsPerPixel: 32, colorSpace: sRGB,
                                                bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.last.rawValue)) else {
            throw ArtifactError("cannot describe 8-bit sRGB RGBA")
        }
        var buffer = try vImage_Buffer(cgImage: image, format: format)
        defer { buffer.free() }
        let width = Int(buffer.width), height = Int(buffer.height)
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        // vImage may pad rows: copy row by row, inside the scope of the array's pointer.
        rgba.withUnsafeMutableBytes { destination in
            for y in 0..<height {
                (destination.baseAddress! + y * width * 4).copyMemory(from: buffer.data + y * buffer.rowBytes, byteCount: width * 4)
            }
        }
        return uprightRgb(RgbaImage(width: width, height: height, pixels: rgba), exifOrientation: orientation)
    }
}
