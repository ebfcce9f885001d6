import Foundation
import XCTest
import ZOTuneBackend

/// The CUDA library as built here by Kernels/build.sh (nvcc from the PyPI wheel that
/// Tests/setup.sh installs): it must compile, export a complete table of this build's ABI, pass the
/// device harness's CPU-only self-test, and — without a GPU — make `--device cuda` fail with the
/// no-device reason rather than an ABI or loading error. Skipped when no nvcc is available.
final class CUDALibraryTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func run(_ script: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.root.appendingPathComponent(script).path] + args
        p.currentDirectoryURL = Self.root
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testLibraryBuildsLoadsAndPassesSelfTest() throws {
        let build = try run("Kernels/build.sh", [])
        if build.status != 0 && build.output.contains("nvcc") && build.output.lowercased().contains("not found") {
            throw XCTSkip("no nvcc: \(build.output.suffix(200))")
        }
        XCTAssertEqual(build.status, 0, "Kernels/build.sh failed:\n\(build.output.suffix(4000))")
        let lib = Self.root.appendingPathComponent("Kernels/build/libzotune_cuda.so").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: lib))

        let check = try run("bench/device/check.sh", ["--self-test"])
        XCTAssertEqual(check.status, 0, "device harness self-test failed:\n\(check.output.suffix(4000))")
        XCTAssertTrue(check.output.contains(" 0 failed"), String(check.output.suffix(400)))

        switch CUDALibrary.load(environment: ["ZOTUNE_CUDA_LIB": lib]) {
        case .success(let loaded):
            XCTAssertGreaterThan(loaded.devices, 0)   // a GPU machine
        case .failure(let error):
            XCTAssertTrue(error.message.hasPrefix("no CUDA device"), "the library did not load as a matching table: \(error.message)")
        }
    }
}
