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

/// The app's state on the main actor; the work (reading the photo, the models, the masks) runs in
/// detached tasks and on the CoreMLRuntime actor, and `busy` shows what is running.
@MainActor
final class Session: ObservableObject {
    @Published var photo: UIImage?
    @Published var overlay: UIImage?
    @Published var status = "Pick a photo"
    @Published var busy: String?
    @Published var prompts: PromptState?
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
        busy = "Loading the models"
        defer { busy = nil }
        do {
            runtime = try await CoreMLRuntime(store: store, computeUnits: choice.units)
            status = "\(store.manifest.precision) on \(choice.rawValue): loaded in \(ms(start)) ms"
            embedding = nil
            await encode()
        } catch { status = "\(choice.rawValue): \(error.localizedDescription)" }
    }

    func setPhoto(_ data: Data) async {
        busy = "Reading the photo"
        defer { busy = nil }
        do {
            let image = try await Task.detached { try PhotoReader.rgb(of: data) }.value
            rgb = image
            photo = UIImage(data: data)
            prompts = PromptState(imageSize: Size(height: image.height, width: image.width))
            overlay = nil
            embedding = nil
            await encode()
        } catch { status = "Photo: \(error)" }
    }

    /// Same glue as the Python pipeline: PilBilinear longest-side resize, then the encoder.
    private func encode() async {
        guard let rgb, let runtime else { return }
        let start = Date()
        busy = "Encoding the photo"
        defer { busy = nil }
        do {
            embedding = try await runtime.encode(photo: rgb)
            status = "preprocess + encoder \(ms(start)) ms: tap, long-press or drag"
        } catch { status = "encoder: \(error)" }
    }

    func clear() { prompts?.clear(); overlay = nil }

    func addPoint(_ p: CGPoint, positive: Bool) {
        prompts?.addPoint(x: Double(p.x), y: Double(p.y), positive: positive)
        Task { await segment() }
    }

    /// A drag from a to b in photo pixels; TinySAMKit clamps it to the photo.
    func drag(from a: CGPoint, to b: CGPoint) {
        prompts?.setBox(fromX: Double(a.x), y0: Double(a.y), toX: Double(b.x), y1: Double(b.y))
    }

    func segment() async {
        guard let runtime, let embedding, let prompts else { return }
        let start = Date()
        busy = "Decoding"
        defer { busy = nil }
        do {
            let result = try await runtime.segment(embedding: embedding, prompts: prompts.prompts, size: prompts.imageSize)
            overlay = await Task.detached { Self.overlay([result.mask], prompts.imageSize) }.value
            status = "decoder + mask \(ms(start)) ms, predicted IoU \(String(format: "%.3f", result.iou))"
        } catch { status = "\(error)" }
    }

    func everything() async {
        guard let runtime, let embedding, let size = prompts?.imageSize else { return }
        let start = Date()
        busy = "Everything"
        defer { busy = nil }
        do {
            let result = try await runtime.everything(embedding: embedding, size: size) { done, planned in
                Task { @MainActor [weak self] in self?.busy = "Everything: \(done) / \(planned) prompts" }
            }
            overlay = await Task.detached { Self.overlay(result.records.map(\.mask), size) }.value
            status = "everything: \(result.records.count) masks from " +
                "\(result.promptsPerRound.map(String.init).joined(separator: " + ")) prompts in \(ms(start)) ms"
        } catch { status = "everything: \(error)" }
    }

    private func ms(_ start: Date) -> Int { Int(Date().timeIntervalSince(start) * 1000) }

    /// Masks as one RGBA image: each mask's colour at half opacity, later masks on top.
    nonisolated static func overlay(_ masks: [[Bool]], _ size: Size) -> UIImage {
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
                            bytesPerRow: size.width * 4, space: CGColorSpace(name: CGColorSpace.sRGB)!,
                            bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                            provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)!
        return UIImage(cgImage: image)
    }
}

struct ContentView: View {
    @StateObject private var session = Session()
    @State private var choice = ComputeChoice.all
    @State private var pick: PhotosPickerItem?

    var body: some View {
        VStack(spacing: 8) {
            HStack {
                PhotosPicker("Photo", selection: $pick, matching: .images)
                Picker("Compute", selection: $choice) { ForEach(ComputeChoice.allCases) { Text($0.rawValue).tag($0) } }
                Button("Everything") { Task { await session.everything() } }
                Button("Clear") { session.clear() }
            }
            .disabled(session.busy != nil)
            HStack {
                if let busy = session.busy { ProgressView(); Text(busy) } else { Text(session.status) }
            }
            .font(.footnote).frame(maxWidth: .infinity, alignment: .leading)
            if let photo = session.photo, let prompts = session.prompts {
                GeometryReader { geometry in
                    // Photo pixels per view point: the upright photo (prompts.imageSize) fitted to the view.
                    let pixels = CGSize(width: prompts.imageSize.width, height: prompts.imageSize.height)
                    let scale = min(geometry.size.width / pixels.width, geometry.size.height / pixels.height)
                    let toPhoto = { (p: CGPoint) in CGPoint(x: p.x / scale, y: p.y / scale) }
                    ZStack(alignment: .topLeading) {
                        Image(uiImage: photo).resizable().scaledToFit()
                        if let overlay = session.overlay { Image(uiImage: overlay).resizable().scaledToFit() }
                        ForEach(0..<prompts.labels.count, id: \.self) { i in
                            Circle().fill(prompts.labels[i] == positiveLabel ? Color.green : Color.red).frame(width: 14, height: 14)
                                .position(x: CGFloat(prompts.points[2 * i]) * scale, y: CGFloat(prompts.points[2 * i + 1]) * scale)
                        }
                        if let box = prompts.box {
                            Rectangle().stroke(Color.green, lineWidth: 2)
                                .frame(width: CGFloat(box[2] - box[0]) * scale, height: CGFloat(box[3] - box[1]) * scale)
                                .offset(x: CGFloat(box[0]) * scale, y: CGFloat(box[1]) * scale)
                        }
                    }
                    .frame(width: pixels.width * scale, height: pixels.height * scale)
                    .contentShape(Rectangle())
                    .gesture(DragGesture(minimumDistance: 10)
                        .onChanged { value in session.drag(from: toPhoto(value.startLocation), to: toPhoto(value.location)) }
                        .onEnded { _ in Task { await session.segment() } })
                    .simultaneousGesture(SpatialTapGesture().onEnded { value in
                        session.addPoint(toPhoto(value.location), positive: true)
                    })
                    .simultaneousGesture(LongPressGesture(minimumDuration: 0.5).sequenced(before: DragGesture(minimumDistance: 0))
                        .onEnded { value in
                            if case .second(true, let drag?) = value { session.addPoint(toPhoto(drag.location), positive: false) }
                        })
                    .allowsHitTesting(session.busy == nil)
                }
            } else {
                Spacer()
            }
        }
        .padding()
        .task(id: choice) { await session.load(choice) }
        .onChange(of: pick) { _, item in
            Task {
                if let data = try? await item?.loadTransferable(type: Data.self) { await session.setPhoto(data) }
            }
        }
    }
}
