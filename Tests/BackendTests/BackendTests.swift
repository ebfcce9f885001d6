import Foundation
import XCTest
import ZOTuneBackend

final class MemoryLedgerTests: XCTestCase {
    func testCurrentAndPeakPerTagAndTotal() {
        let ledger = MemoryLedger(name: "test")
        ledger.allocated(100, tag: .weights)
        ledger.allocated(50, tag: .activations)
        ledger.freed(50, tag: .activations)
        ledger.allocated(30, tag: .activations)
        let s = ledger.snapshot
        XCTAssertEqual(s.usage(.weights), .init(current: 100, peak: 100))
        XCTAssertEqual(s.usage(.activations), .init(current: 30, peak: 50))
        XCTAssertEqual(s.total, .init(current: 130, peak: 150))
        ledger.resetPeaks()
        XCTAssertEqual(ledger.snapshot.total, .init(current: 130, peak: 130))
        XCTAssertEqual(ledger.snapshot.usage(.activations).peak, 30)
        let table = ledger.table()
        XCTAssertTrue(table.contains("weights") && table.contains("trainable-state") && table.contains("optimizer"), table)
    }

    func testBackendAllocationsAreAccountedAndReleased() throws {
        let backend = KernelBackend.cpu()
        do {
            let w = try backend.allocate([1000], dtype: .f32, tag: .weights)
            let a = try backend.allocate([10, 10], dtype: .bf16, tag: .activations)
            XCTAssertEqual(backend.ledger.snapshot.usage(.weights).current, 4000)
            XCTAssertEqual(backend.ledger.snapshot.usage(.activations).current, 200)
            XCTAssertEqual(backend.toHost(w), [Float](repeating: 0, count: 1000), "allocations are zero-filled")
            _ = a
        }
        let s = backend.ledger.snapshot
        XCTAssertEqual(s.total.current, 0, "buffers are freed with their last tensor")
        XCTAssertEqual(s.total.peak, 4200)
    }

    func testConcurrentAccounting() {
        let ledger = MemoryLedger(name: "concurrent")
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<1000 {
                ledger.allocated(3, tag: .scratch)
                ledger.freed(3, tag: .scratch)
            }
        }
        XCTAssertEqual(ledger.snapshot.usage(.scratch).current, 0)
        XCTAssertLessThanOrEqual(ledger.snapshot.usage(.scratch).peak, 24)
    }
}

final class DeviceSelectionTests: XCTestCase {
    /// One GPU per MPI rank on a machine: the local rank modulo the devices; an explicit choice wins.
    func testCUDADeviceOfAnMPIRank() {
        XCTAssertEqual(DeviceSelection.cudaDeviceIndex(environment: [:], devices: 8), 0)
        XCTAssertEqual(DeviceSelection.cudaDeviceIndex(environment: ["OMPI_COMM_WORLD_LOCAL_RANK": "3"], devices: 8), 3)
        XCTAssertEqual(DeviceSelection.cudaDeviceIndex(environment: ["OMPI_COMM_WORLD_LOCAL_RANK": "9"], devices: 8), 1)
        XCTAssertEqual(DeviceSelection.cudaDeviceIndex(environment: ["SLURM_LOCALID": "2"], devices: 4), 2)
        XCTAssertEqual(DeviceSelection.cudaDeviceIndex(environment: ["OMPI_COMM_WORLD_LOCAL_RANK": "3", "ZOTUNE_CUDA_DEVICE": "1"], devices: 8), 1)
    }

    let missing = ["ZOTUNE_CUDA_LIB": "/nonexistent/libzotune_cuda.so"]

    func testRequestParsing() throws {
        XCTAssertEqual(try DeviceRequest.resolve(flag: nil, environment: [:]), .auto)
        XCTAssertEqual(try DeviceRequest.resolve(flag: nil, environment: ["ZOTUNE_DEVICE": "CPU"]), .cpu)
        XCTAssertEqual(try DeviceRequest.resolve(flag: "cuda", environment: ["ZOTUNE_DEVICE": "cpu"]), .cuda, "the flag wins")
        XCTAssertThrowsError(try DeviceRequest.resolve(flag: nil, environment: ["ZOTUNE_DEVICE": "gpu"])) { error in
            XCTAssertTrue("\(error)".contains("ZOTUNE_DEVICE"), "\(error)")
        }
    }

    func testAutoFallsBackToCPUWithOneNotice() throws {
        let choice = try DeviceSelection.select(.auto, environment: missing)
        XCTAssertEqual(choice.backend.device, .cpu)
        let notice = try XCTUnwrap(choice.notice)
        XCTAssertFalse(notice.contains("\n"))
        XCTAssertTrue(notice.contains("/nonexistent/libzotune_cuda.so"), notice)
        XCTAssertNil(try DeviceSelection.select(.cpu, environment: missing).notice)
    }

    func testCudaWithoutUsableLibraryFailsWithReason() {
        XCTAssertThrowsError(try DeviceSelection.select(.cuda, environment: missing)) { error in
            XCTAssertTrue("\(error)".contains("cannot load /nonexistent/libzotune_cuda.so"), "\(error)")
        }
        // A real shared library that is not ours: no entry point.
        let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6"].first {
            FileManager.default.fileExists(atPath: $0)
        }
        if let libm {
            XCTAssertThrowsError(try DeviceSelection.select(.cuda, environment: ["ZOTUNE_CUDA_LIB": libm])) { error in
                XCTAssertTrue("\(error)".contains("zt_cuda_get_api"), "\(error)")
            }
        }
        // Not a shared library at all.
        let bogus = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-bogus-\(getpid()).so")
        try? Data("not an ELF file".utf8).write(to: bogus)
        defer { try? FileManager.default.removeItem(at: bogus) }
        XCTAssertThrowsError(try DeviceSelection.select(.cuda, environment: ["ZOTUNE_CUDA_LIB": bogus.path])) { error in
            XCTAssertTrue("\(error)".contains(bogus.path), "\(error)")
        }
    }
}

final class KernelBackendTests: XCTestCase {
    let backend = KernelBackend.cpu()

    // z is indexed by the element's position in its tensor: perturbing views row by row equals
    // perturbing the whole tensor.
    func testViewsKeepTheirStreamIndex() throws {
        let whole = try backend.allocate([7, 13], tag: .weights)
        let rows = try backend.allocate([7, 13], tag: .weights)
        backend.perturb(whole, seed: 5, tensorId: 9, stream: 0, scale: 1)
        for r in 0..<7 { backend.perturb(rows.rows(r, 1), seed: 5, tensorId: 9, stream: 0, scale: 1) }
        XCTAssertEqual(backend.toHost(whole), backend.toHost(rows))
        XCTAssertNotEqual(backend.toHost(whole), [Float](repeating: 0, count: 91))
    }

    // Batched matmul with a broadcast right operand against a naive triple loop.
    func testBatchedMatmulAgainstNaive() throws {
        let (batch, m, k, n) = (3, 5, 7, 4)
        let av = (0..<(batch * m * k)).map { Float(($0 * 37) % 11) - 5 }
        let bv = (0..<(n * k)).map { Float(($0 * 13) % 7) - 3 }
        let a = try backend.tensor(av, shape: [batch, m, k], tag: .activations)
        let b = try backend.tensor(bv, shape: [n, k], tag: .weights)   // used transposed: (k, n)
        let c = try backend.allocate([batch, m, n], tag: .activations)
        backend.matmul(c, a, transposeA: false, b, transposeB: true, alpha: 2, beta: 0)
        var expected = [Float](repeating: 0, count: batch * m * n)
        for p in 0..<batch { for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for q in 0..<k { s += av[(p * m + i) * k + q] * bv[j * k + q] }
            expected[(p * m + i) * n + j] = 2 * s
        } } }
        XCTAssertEqual(backend.toHost(c), expected)   // small integers: exact in f32
    }

    // The window and the rope factor reach the kernels; the overloads without them mean none.
    func testAttentionWindowAndRopeFactorArePassedOn() throws {
        let (t, h, d) = (6, 2, 4)
        let q = try backend.tensor((0..<(t * h * d)).map { Float($0 % 7) * 0.1 }, shape: [1, t, h, d], tag: .activations)
        let kv = (0..<(t * h * d)).map { Float($0 % 5) - 2 }
        let k = try backend.tensor(kv.reversed(), shape: [1, t, h, d], tag: .activations)
        let v = try backend.tensor(kv, shape: [1, t, h, d], tag: .activations)
        let one = try backend.allocate([1, t, h, d], tag: .activations), all = try backend.allocate([1, t, h, d], tag: .activations)
        backend.attention(one, q: q, k: k, v: v, keyLength: nil, keyMask: nil, scale: 0.5, window: 1)
        // Window 1: each query sees only its own key, weight exactly 1, so the output is v.
        XCTAssertEqual(backend.toHost(one), kv)
        backend.attention(all, q: q, k: k, v: v, keyLength: nil, keyMask: nil, scale: 0.5)
        let windowed = try backend.allocate([1, t, h, d], tag: .activations)
        backend.attention(windowed, q: q, k: k, v: v, keyLength: nil, keyMask: nil, scale: 0.5, window: t)
        XCTAssertEqual(backend.toHost(all), backend.toHost(windowed), "window ≥ S is no window")
        XCTAssertNotEqual(backend.toHost(all), kv)

        // Factor 2 (a power of two: exact) doubles the rotated dims and leaves the others.
        let x0 = (0..<(3 * h * 8)).map { Float($0 % 9) * 0.25 - 1 }
        let pos = try backend.tensor([Int32(0), 5, 900], shape: [3], tag: .scratch)
        let inv = try backend.tensor([1, 0.1], shape: [2], tag: .weights)
        let plain = try backend.tensor(x0, shape: [3, h, 8], tag: .activations)
        let scaled = try backend.tensor(x0, shape: [3, h, 8], tag: .activations)
        backend.rope(plain, positions: pos, headDim: 8, rotaryDim: 4, invFreq: inv)
        backend.rope(scaled, positions: pos, headDim: 8, rotaryDim: 4, invFreq: inv, scale: 2)
        let p = backend.toHost(plain), s = backend.toHost(scaled)
        for i in 0..<x0.count { XCTAssertEqual(s[i], i % 8 < 4 ? 2 * p[i] : x0[i], "element \(i)") }
    }

    func testEmbeddingRejectsOutOfRangeIds() throws {
        let table = try backend.tensor((0..<12).map(Float.init), shape: [4, 3], tag: .weights)
        let out = try backend.allocate([2, 3], tag: .activations)
        try backend.embedding(out, table: table, ids: try backend.tensor([Int32(3), 1], shape: [2], tag: .scratch))
        XCTAssertEqual(backend.toHost(out), [9, 10, 11, 3, 4, 5])
        XCTAssertThrowsError(try backend.embedding(out, table: table, ids: try backend.tensor([Int32(4), 0], shape: [2], tag: .scratch)))
    }
}
