// Loading a model larger than the memory the process may use (ulimit -v) is a clear error that
// names what failed, never a crash: the real SmolLM2 GGUF (513 MiB as f32) under a 500 MB
// address-space limit, through the real binary. Skipped when the GGUF or the binary is absent.
import Foundation
import XCTest

final class MemoryLimitTests: XCTestCase {
    func testModelLargerThanTheMemoryLimitIsAClearError() throws {
        guard let gguf = SmolLM2.path else { throw XCTSkip("SmolLM2 GGUF not found (Tests/setup.sh installs it)") }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        guard let bin = [dir.appendingPathComponent("zotune"), dir.deletingLastPathComponent().appendingPathComponent("zotune")]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else { throw XCTSkip("zotune binary not found") }
        for limitKiB in [300_000, 500_000] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "ulimit -v \(limitKiB) && exec \"$0\" generate --model \"$1\" --prompt Hello --max-tokens 1 --device cpu", bin.path, gguf]
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .exit, "killed by a signal under ulimit -v \(limitKiB): \(text)")
            XCTAssertEqual(p.terminationStatus, 1, text)
            XCTAssertTrue(text.contains("cannot mmap") || text.contains("out of cpu memory"), "ulimit -v \(limitKiB): \(text)")
        }
    }
}
