import Foundation
import XCTest
import ZOTuneKernels

/// The CPU backend's host buffers (Kernels/cpu/host_alloc.c): every size 64-byte aligned and
/// writable to its last byte; a freed large buffer (≥ 4 MiB) comes back to the next request of its
/// rounded size, so a forward repeated at one shape takes no page faults for its activations.
final class HostAllocTests: XCTestCase {
    func testEverySizeIsAlignedAndWritable() {
        for bytes in [0, 1, 100, 4096, (4 << 20) - 1, 4 << 20, (8 << 20) + 1] {
            var p: UnsafeMutableRawPointer?
            XCTAssertEqual(zt_host_malloc(&p, bytes), 0, "\(bytes) bytes")
            guard let p else { return XCTFail("no pointer for \(bytes) bytes") }
            XCTAssertEqual(Int(bitPattern: p) % 64, 0, "\(bytes) bytes")
            if bytes > 0 { memset(p, 0x5a, bytes) }
            XCTAssertEqual(zt_host_free(p), 0)
        }
        XCTAssertEqual(zt_host_free(nil), 0)
    }

    func testAFreedLargeBufferIsHandedBackWithItsContents() throws {
        guard ProcessInfo.processInfo.environment["ZOTUNE_HUGE_PAGES"] != "0" else { throw XCTSkip("ZOTUNE_HUGE_PAGES=0: nothing held") }
        let bytes = (6 << 20) + 12
        var a: UnsafeMutableRawPointer?, b: UnsafeMutableRawPointer?, c: UnsafeMutableRawPointer?
        XCTAssertEqual(zt_host_malloc(&a, bytes), 0)
        memset(a!, 0x3c, bytes)
        XCTAssertEqual(zt_host_free(a), 0)
        // Same rounded size (8 MiB, whole 2 MiB pages): the held mapping, pages still resident.
        XCTAssertEqual(zt_host_malloc(&b, bytes + 1000), 0)
        XCTAssertEqual(b, a)
        XCTAssertEqual(b!.load(fromByteOffset: bytes - 1, as: UInt8.self), 0x3c)
        // Another size: a new mapping (the held one is not cut up).
        XCTAssertEqual(zt_host_malloc(&c, 10 << 20), 0)
        XCTAssertNotEqual(c, b)
        XCTAssertEqual(zt_host_free(b), 0)
        XCTAssertEqual(zt_host_free(c), 0)
    }
}
