// swift-tools-version:5.9
// TinySAMKit: the glue between a photo, TinySAM's CoreML models and the masks, mirroring the Python
// reference pipeline (tinysam_mobile). `swift test` checks it against the golden vectors on Linux or a Mac
// (tests/test_swift_glue.py in `make test`); the app in TinySAMApp/ needs Xcode.
import PackageDescription

let package = Package(
    name: "TinySAMKit",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [.library(name: "TinySAMKit", targets: ["TinySAMKit"])],
    targets: [
        .target(name: "TinySAMKit"),
        .testTarget(name: "TinySAMKitTests", dependencies: ["TinySAMKit"]),
    ]
)
