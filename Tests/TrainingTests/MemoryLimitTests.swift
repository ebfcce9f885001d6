// Loading a model larger than the memory the process may use (ulimit -v) is a clear error that
// names what failed, never a crash: the real SmolLM2 GGUF (513 MiB as f32) under a 500 MB
// address-space limit, through the real binary. Skipped when the GGUF or the binary is absent.
import Foundation
import XCTest

final class MemoryLimitTests: XCTestCase {
    func testModelLargerThanTheMemoryLimitIsAClearError() throws {
        let gguf = try smolLM2GGUF()
        let bin = try binary()
        for limitKiB in [300_000, 500_000] {
            let (p, text) = try runToEnd(URL(fileURLWithPath: "/bin/sh"),
                                         ["-c", "ulimit -v \(limitKiB) && exec \"$0\" generate --model \"$1\" --prompt Hello --max-tokens 1 --device cpu", bin.path, gguf])
            XCTAssertEqual(p.terminationReason, .exit, "killed by a signal under ulimit -v \(limitKiB): \(text)")
            XCTAssertEqual(p.terminationStatus, 1, text)
            XCTAssertTrue(text.contains("cannot mmap") || text.contains("out of cpu memory"), "ulimit -v \(limitKiB): \(text)")
        }
    }
}
