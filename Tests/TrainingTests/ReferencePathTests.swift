import Foundation
import XCTest

/// The reference Python and the shared task data are found from the environment or relative to the
/// package, never at one machine's absolute path.
final class ReferencePathTests: XCTestCase {
    func testReferencePythonIsTheOverrideElseThePackagesVenv() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-refpath-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        XCTAssertNil(referencePython(environment: [:], packageRoot: root), "no venv, no override: the tests skip")
        let venv = root.appendingPathComponent(".venv-ref/bin")
        try FileManager.default.createDirectory(at: venv, withIntermediateDirectories: true)
        let python = venv.appendingPathComponent("python")
        FileManager.default.createFile(atPath: python.path, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        XCTAssertEqual(referencePython(environment: [:], packageRoot: root), python.path)
        XCTAssertEqual(referencePython(environment: ["ZOTUNE_REF_PYTHON": "/bin/sh"], packageRoot: root), "/bin/sh")
        XCTAssertEqual(referencePython(environment: ["ZOTUNE_REF_PYTHON": ""], packageRoot: root), python.path, "empty means unset")
    }

    func testSharedDataIsTheOverrideThenSharedNextToThePackage() {
        let root = URL(fileURLWithPath: "/srv/checkout/zotune")
        XCTAssertEqual(sharedDataCandidates(environment: [:], packageRoot: root).map(\.path), ["/srv/checkout/shared/data"])
        XCTAssertEqual(sharedDataCandidates(environment: ["ZOTUNE_SHARED_DATA": "/d"], packageRoot: root).map(\.path),
                       ["/d", "/srv/checkout/shared/data"])
    }
}
