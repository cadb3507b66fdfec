import XCTest
import TinySAMKit

/// Manifests written by the converter's writer (tinysam_mobile/golden_manifests.py): the ones the Python
/// side accepts parse to the settings it wrote, the others are refused with a ManifestError.
final class ManifestGoldenTests: XCTestCase {
    func testAcceptsAndRefusesWhatPythonDoes() throws {
        let folder = try Golden.directory().appendingPathComponent("manifests")
        let rows = try String(contentsOf: folder.appendingPathComponent("index.txt"), encoding: .ascii)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(rows.contains { $0.first == "accepted" } && rows.contains { $0.first == "refused" }, "manifest cases")
        for row in rows {
            XCTAssertEqual(row.count, 7, "malformed manifests/index.txt row \(row)")
            guard row.count == 7 else { continue }
            let data = try Data(contentsOf: folder.appendingPathComponent(row[1]))
            if row[0] == "refused" {
                XCTAssertThrowsError(try ArtifactManifest(json: data), "\(row[1]): accepted") { error in
                    XCTAssertTrue(error is ManifestError, "\(row[1]): \(error)")
                }
                continue
            }
            let manifest = try ArtifactManifest(json: data)
            XCTAssertEqual(manifest.precision, row[2], row[1])
            XCTAssertEqual([manifest.imgSize, manifest.maxTokens, manifest.everythingBatch, manifest.everythingPoints],
                           row[3...6].map { Int($0)! }, row[1])
            XCTAssertEqual(manifest.minTokens, 1, "\(row[1]): prompt tokens from 1 (an empty point list)")
            XCTAssertEqual(Set(manifest.artifacts.keys), Set(ArtifactManifest.roles), row[1])
        }
    }
}
