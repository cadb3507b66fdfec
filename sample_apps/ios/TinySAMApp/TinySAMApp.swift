import CoreML
import PhotosUI
import SwiftUI
import TinySAMKit

@main
struct TinySAMApp: App {
    var body: some Scene { WindowGroup { ContentView() } }
}

/// Where CoreML may run the models.
enum ComputeChoice: String, CaseIterable, Identifiable {
    case cpuOnly = "CPU only", cpuAndGPU = "CPU + GPU", all = "All (Neural Engine)"
    var id: String { rawValue }
    var units: MLComputeUnits { switch self { case .cpuOnly: .cpuOnly; case .cpuAndGPU: .cpuAndGPU; case .all: .all } }
}

@MainActor
final class Session: ObservableObject {
    @Published var photo: UIImage?
    @Published var overlay: UIImage?
    @Published var status = "Pick a photo"
    @Published var points: [CGPoint] = []
    @Published var labels: [Float] = []
    @Published var box: CGRect?
    private var store: ArtifactStore?
    private var runtime: CoreMLRuntime?
    private var rgb: RgbImage?
    private var embedding: MLMultiArray?

    init() {
        do { store = try ArtifactStore.load() } catch { status = "Artifacts: \(error.localizedDescription)" }
    }

    func load(_ choice: ComputeChoice) async {
        guard let store else { return }
        let start = Date()
        do {
            runtime = try await CoreMLRuntime(store: store, computeUnits: choice.units)
            status = "\(store.precision) on \(choice.rawValue): loaded in \(ms(start)) ms"
            embedding = nil
            await encode()
        } catch { status = "\(choice.rawValue): \(error.localizedDescription)" }
    }

    func setPhoto(_ image: UIImage) async {
        photo = image
        rgb = Self.rgb(of: image)
        clear()
        embedding = nil
        await encode()
    }

    /// Same glue as the Python pipeline: PilBilinear longest-side resize, then the encoder.
    private func encode() async {
        guard let rgb, let runtime, let store else { return }
        var start = Date()
        let resized = resizeLongestSide(rgb, target: store.imgSize)
        let preprocessMs = ms(start)
        start = Date()
        do {
            embedding = try runtime.encode(resized: resized)
            status = "preprocess \(preprocessMs) ms, encoder \(ms(start)) ms: tap, long-press or drag"
        } catch { status = "encoder: \(error.localizedDescription)" }
    }

    func clear() { points = []; labels = []; box = nil; overlay = nil }

    func segment() {
        guard let rgb, let runtime, let store, let embedding else { return }
        let size = Size(height: rgb.height, width: rgb.width)
        let prompts = Prompts(points: points.flatMap { [Float($0.x), Float($0.y)] }, labels: labels,
                              box: box.map { [Float($0.minX), Float($0.minY), Float($0.maxX), Float($0.maxY)] })
        do {
            var start = Date()
            let decoderPrompts = try encodePrompts(prompts, originalSize: size, target: store.imgSize, numPoints: store.numPoints)
            let output = try runtime.decode(embedding: embedding, prompts: decoderPrompts)
            let decodeMs = ms(start)
            start = Date()
            let best = bestMaskIndex(output.iou)
            let inputSize = resizedShape(height: size.height, width: size.width, target: store.imgSize)
            overlay = Self.overlay([output.mask(best, inputSize: inputSize, originalSize: size, target: store.imgSize)], size)
            status = "decoder \(decodeMs) ms, masks \(ms(start)) ms, predicted IoU \(String(format: "%.3f", output.iou[best]))"
        } catch { status = "\(error)" }
    }

    func everything() {
        guard let rgb, let runtime, let store, let embedding else { return }
        let size = Size(height: rgb.height, width: rgb.width)
        let start = Date()
        var config = EverythingConfig()
        config.pointsPerBatch = store.everythingBatch
        let generator = HierarchicalEverything(config: config, decoder: runtime.batchDecoder(embedding: embedding),
                                               numPoints: 2, target: store.imgSize)
        do {
            let records = try generator.generate(originalSize: size)
            overlay = Self.overlay(records.map(\.mask), size)
            status = "everything: \(records.count) masks from \(generator.promptsPerRound.map(String.init).joined(separator: " + ")) prompts in \(ms(start)) ms"
        } catch { status = "everything: \(error.localizedDescription)" }
    }

    private func ms(_ start: Date) -> Int { Int(Date().timeIntervalSince(start) * 1000) }

    /// Upright 8-bit RGB pixels of the photo (EXIF orientation applied by drawing).
    static func rgb(of image: UIImage) -> RgbImage {
        let w = Int(image.size.width * image.scale), h = Int(image.size.height * image.scale)
        var rgba = [UInt8](repeating: 0, count: w * h * 4)
        let context = CGContext(data: &rgba, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                                space: CGColorSpaceCreateDeviceRGB(), bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue)!
        UIGraphicsPushContext(context)
        context.translateBy(x: 0, y: CGFloat(h))
        context.scaleBy(x: image.scale, y: -image.scale)
        image.draw(at: .zero)
        UIGraphicsPopContext()
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) { rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2] }
        return RgbImage(width: w, height: h, pixels: rgb)
    }

    /// Masks as one RGBA image: each mask's colour at half opacity, later masks on top.
    static func overlay(_ masks: [[Bool]], _ size: Size) -> UIImage {
        var rgba = [UInt8](repeating: 0, count: size.width * size.height * 4)
        for (k, mask) in masks.enumerated() {
            let color = UIColor(hue: CGFloat((Double(k) * 0.618033988749895).truncatingRemainder(dividingBy: 1)),
                                saturation: 0.8, brightness: 1, alpha: 1)
            var r: CGFloat = 0, g: CGFloat = 0, b: CGFloat = 0, a: CGFloat = 0
            color.getRed(&r, green: &g, blue: &b, alpha: &a)
            for i in mask.indices where mask[i] {
                // Premultiplied alpha 0.5.
                (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]) = (UInt8(r * 127), UInt8(g * 127), UInt8(b * 127), 128)
            }
        }
        let provider = CGDataProvider(data: Data(rgba) as CFData)!
        let image = CGImage(width: size.width, height: size.height, bitsPerComponent: 8, bitsPerPixel: 32,
                            bytesPerRow: size.width * 4, space: CGColorSpaceCreateDeviceRGB(),
                            bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                            provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)!
        return UIImage(cgImage: image)
    }
}

struct ContentView: View {
    @StateObject private var session = Session()
    @State private var choice = ComputeChoice.all
    @State private var pick: PhotosPickerItem?
    @State private var dragStart: CGPoint?

    var body: some View {
        VStack(spacing: 8) {
            HStack {
                PhotosPicker("Photo", selection: $pick, matching: .images)
                Picker("Compute", selection: $choice) { ForEach(ComputeChoice.allCases) { Text($0.rawValue).tag($0) } }
                Button("Everything") { session.everything() }
                Button("Clear") { session.clear() }
            }
            Text(session.status).font(.footnote).frame(maxWidth: .infinity, alignment: .leading)
            if let photo = session.photo {
                GeometryReader { geometry in
                    let scale = min(geometry.size.width / photo.size.width, geometry.size.height / photo.size.height)
                    let toPhoto = { (p: CGPoint) in CGPoint(x: p.x / scale * photo.scale, y: p.y / scale * photo.scale) }
                    ZStack(alignment: .topLeading) {
                        Image(uiImage: photo).resizable().scaledToFit()
                        if let overlay = session.overlay { Image(uiImage: overlay).resizable().scaledToFit() }
                        ForEach(session.points.indices, id: \.self) { i in
                            Circle().fill(session.labels[i] == 1 ? Color.green : Color.red).frame(width: 14, height: 14)
                                .position(x: session.points[i].x * scale / photo.scale, y: session.points[i].y * scale / photo.scale)
                        }
                        if let box = session.box {
                            Rectangle().stroke(Color.green, lineWidth: 2)
                                .frame(width: box.width * scale / photo.scale, height: box.height * scale / photo.scale)
                                .offset(x: box.minX * scale / photo.scale, y: box.minY * scale / photo.scale)
                        }
                    }
                    .frame(width: photo.size.width * scale, height: photo.size.height * scale)
                    .contentShape(Rectangle())
                    .gesture(DragGesture(minimumDistance: 10)
                        .onChanged { value in
                            let a = toPhoto(value.startLocation), b = toPhoto(value.location)
                            session.box = CGRect(x: min(a.x, b.x), y: min(a.y, b.y), width: abs(a.x - b.x), height: abs(a.y - b.y))
                        }
                        .onEnded { _ in session.segment() })
                    .simultaneousGesture(SpatialTapGesture().onEnded { value in
                        session.points.append(toPhoto(value.location)); session.labels.append(1); session.segment()
                    })
                    .simultaneousGesture(LongPressGesture(minimumDuration: 0.5).sequenced(before: DragGesture(minimumDistance: 0))
                        .onEnded { value in
                            if case .second(true, let drag?) = value {
                                session.points.append(toPhoto(drag.location)); session.labels.append(0); session.segment()
                            }
                        })
                }
            } else {
                Spacer()
            }
        }
        .padding()
        .task(id: choice) { await session.load(choice) }
        .onChange(of: pick) { _, item in
            Task {
                if let data = try? await item?.loadTransferable(type: Data.self), let image = UIImage(data: data) {
                    await session.setPhoto(image)
                }
            }
        }
    }
}
