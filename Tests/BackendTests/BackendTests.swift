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

    // The soft cap reaches the attention kernel, the overloads without it mean none (bit for bit),
    // and softcap(_:cap:) caps in place.
    func testAttentionSoftcapIsPassedOnAndSoftcapOp() throws {
        let (t, h, d) = (6, 2, 4)
        let qv = (0..<(t * h * d)).map { Float($0 % 7) * 0.5 }, kv = (0..<(t * h * d)).map { Float($0 % 5) - 2 }
        let q = try backend.tensor(qv, shape: [1, t, h, d], tag: .activations)
        let k = try backend.tensor(kv.reversed(), shape: [1, t, h, d], tag: .activations)
        let v = try backend.tensor(kv, shape: [1, t, h, d], tag: .activations)
        func run(window: Int?, softcap: Float?) throws -> [Float] {
            let out = try backend.allocate([1, t, h, d], tag: .activations)
            switch (window, softcap) {
            case (nil, nil): backend.attention(out, q: q, k: k, v: v, keyLength: nil, keyMask: nil, scale: 0.5)
            case (let w?, nil): backend.attention(out, q: q, k: k, v: v, keyLength: nil, keyMask: nil, scale: 0.5, window: w)
            default:
                backend.attention(out, q: q, k: k, v: v, keyLength: nil, keyMask: nil, scale: 0.5, window: window ?? 0,
                                  softcap: softcap ?? 0)
            }
            return backend.toHost(out)
        }
        XCTAssertEqual(try run(window: nil, softcap: nil).map(\.bitPattern), try run(window: 0, softcap: 0).map(\.bitPattern))
        XCTAssertEqual(try run(window: 2, softcap: nil).map(\.bitPattern), try run(window: 2, softcap: 0).map(\.bitPattern))
        // Window 2 with cap 1.5, in Double: query i weighs keys i − 1 and i by softmax(1.5·tanh(s / 1.5)).
        // Scores reach ~10 here, so the cap moves outputs by O(0.1); f32 rounding of 4-term dots and
        // a 2-term softmax stays below 1e-5 on |v| ≤ 2 (≥ 100 ulp).
        let capped = try run(window: 2, softcap: 1.5)
        var moved = 0.0
        let plain = try run(window: 2, softcap: 0)
        for i in 0..<t {
            for hh in 0..<h {
                let keys = i == 0 ? [0] : [i - 1, i]
                let s = keys.map { j -> Double in
                    let dot = (0..<d).reduce(0.0) { $0 + Double(qv[(i * h + hh) * d + $1]) * Double(kv.reversed()[(j * h + hh) * d + $1]) }
                    return 1.5 * tanh(0.5 * dot / 1.5)
                }
                let m = s.max()!, w = s.map { exp($0 - m) }, l = w.reduce(0, +)
                for e in 0..<d {
                    let want = zip(keys, w).reduce(0.0) { $0 + $1.1 / l * Double(kv[($1.0 * h + hh) * d + e]) }
                    let at = (i * h + hh) * d + e
                    XCTAssertEqual(Double(capped[at]), want, accuracy: 1e-5, "row \(i) head \(hh) dim \(e)")
                    moved = max(moved, abs(Double(plain[at]) - want))
                }
            }
        }
        XCTAssertGreaterThan(moved, 1e-2, "the cap changes the outputs")

        // softcap(_:cap:): 30·tanh(x / 30) within 8u relative (division, zt_tanh ≤ 3.8u, product).
        let xs: [Float] = [-200, -30, -1, 0, 0.25, 29, 1000]
        let x = try backend.tensor(xs, shape: [7], tag: .activations)
        backend.softcap(x, cap: 30)
        for (got, x0) in zip(backend.toHost(x), xs) {
            let want = 30 * tanh(Double(x0) / 30)
            XCTAssertEqual(Double(got), want, accuracy: 8 * 0x1p-24 * abs(want), "softcap x \(x0)")
        }
    }

    func testEmbeddingRejectsOutOfRangeIds() throws {
        let table = try backend.tensor((0..<12).map(Float.init), shape: [4, 3], tag: .weights)
        let out = try backend.allocate([2, 3], tag: .activations)
        try backend.embedding(out, table: table, ids: try backend.tensor([Int32(3), 1], shape: [2], tag: .scratch))
        XCTAssertEqual(backend.toHost(out), [9, 10, 11, 3, 4, 5])
        XCTAssertThrowsError(try backend.embedding(out, table: table, ids: try backend.tensor([Int32(4), 0], shape: [2], tag: .scratch)))
    }
}
