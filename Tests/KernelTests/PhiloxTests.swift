import Foundation
import XCTest
import ZOTuneKernels

/// The z stream (ALGORITHMS.md §2) against outside references: Random123's published known-answer
/// vectors, the FNV spec's test vectors, double-precision libm, and N(0,1) itself.
final class PhiloxTests: XCTestCase {
    // Random123 tests/kat_vectors, every "philox4x32 10" line: counter, key → output.
    func testPhiloxKnownAnswerVectors() {
        let kat: [([UInt32], [UInt32], [UInt32])] = [
            ([0, 0, 0, 0], [0, 0], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
            ([0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff], [0xffff_ffff, 0xffff_ffff],
             [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]),
            ([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0],
             [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]),
        ]
        for (ctr, key, expected) in kat {
            let out = zt_philox4x32_10(zt_u32x4(v: (ctr[0], ctr[1], ctr[2], ctr[3])), key[0], key[1])
            XCTAssertEqual([out.v.0, out.v.1, out.v.2, out.v.3], expected)
        }
    }

    // The counter layout of §2: (j lo, j hi, tensorId, stream) under key (seed lo, seed hi).
    func testBlockCounterLayout() {
        let seed: UInt64 = 0x299f_31d0_a409_3822, j: UInt64 = 0x85a3_08d3_243f_6a88
        let out = zt_philox_block(seed, 0x1319_8a2e, 0x0370_7344, j)
        XCTAssertEqual([out.v.0, out.v.1, out.v.2, out.v.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    // FNV-1a 32-bit test vectors from the FNV specification.
    func testFNV1a() {
        for (text, hash) in [("", UInt32(0x811c_9dc5)), ("a", 0xe40c_292c), ("foobar", 0xbf9c_f968)] {
            let bytes = Array(text.utf8).map { CChar(bitPattern: $0) }
            XCTAssertEqual(zt_fnv1a32(bytes, UInt64(bytes.count)), hash, text)
        }
    }

    // Our log and sincos polynomials against double-precision libm on words covering (0, 1].
    func testTransformsMatchDoublePrecision() {
        var worstRadius = 0.0, worstTrig = 0.0
        var words: [UInt32] = [0, 0xff, 0x100, 0xffff_ff00, 0xffff_ffff, 0x8000_0000, 0x4000_0000, 0xc000_0000]
        var state: UInt64 = 12345
        for _ in 0..<200_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            words.append(UInt32(truncatingIfNeeded: state >> 32))
        }
        for w in words {
            let u = Double((w >> 8) + 1) * 0x1p-24
            let r = zt_box_muller_radius(w)
            let exact = (-2 * log(u)).squareRoot()
            // Relative error against the exact radius (near u = 1 the radius is tiny and only the
            // absolute error is meaningful). Measured over all 2^24 uniforms: 1.6e-7, 8.8e-8 for trig.
            worstRadius = max(worstRadius, abs(Double(r) - exact) / max(exact, 1e-3))
            var c: Float = 0, s: Float = 0
            zt_sincos_2pi(w, &c, &s)
            worstTrig = max(worstTrig, abs(Double(c) - cos(2 * .pi * u)), abs(Double(s) - sin(2 * .pi * u)))
        }
        XCTAssertLessThan(worstRadius, 2.5e-7, "radius error \(worstRadius)")  // ≈ 2 float ulp
        XCTAssertLessThan(worstTrig, 1.2e-7, "sin/cos error \(worstTrig)")     // ≈ 1 ulp of values ≤ 1
    }

    // z[4j + k] is Box–Muller of the block's words exactly as documented.
    func testNormalsFollowDocumentedMapping() {
        for j: UInt64 in [0, 1, 77, 1 << 33] {
            let w = zt_philox_block(42, 7, 0, j)
            var z = [Float](repeating: 0, count: 4)
            zt_normal_block(42, 7, 0, j, &z)
            func expected(_ a: UInt32, _ b: UInt32) -> (Double, Double) {
                let u1 = Double((a >> 8) + 1) * 0x1p-24, u2 = Double((b >> 8) + 1) * 0x1p-24
                let r = (-2 * log(u1)).squareRoot()
                return (r * cos(2 * .pi * u2), r * sin(2 * .pi * u2))
            }
            let (z0, z1) = expected(w.v.0, w.v.1), (z2, z3) = expected(w.v.2, w.v.3)
            for (got, want) in zip(z, [z0, z1, z2, z3]) { XCTAssertEqual(Double(got), want, accuracy: 3e-6) }
        }
    }

    func testNormalStatistics() {
        let n = 1 << 20
        var z = [Float](repeating: 0, count: n)
        zt_fill_normal(&z, zt_dtype(ZT_F32), Int64(n), 0, 0xC0FFEE, 99, 0, 1)
        let mean = z.reduce(0.0) { $0 + Double($1) } / Double(n)
        let variance = z.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
        let kurtosis = z.reduce(0.0) { $0 + pow(Double($1) - mean, 4) } / Double(n) / (variance * variance)
        // 5-sigma bands of the sampling distributions of the mean (1/√n), variance (√(2/n)) and
        // kurtosis (√(24/n)) for N(0,1).
        XCTAssertLessThan(abs(mean), 5 / Double(n).squareRoot())
        XCTAssertLessThan(abs(variance - 1), 5 * (2 / Double(n)).squareRoot())
        XCTAssertLessThan(abs(kurtosis - 3), 5 * (24 / Double(n)).squareRoot())
        // Kolmogorov–Smirnov against Φ: the 0.1% critical value is 1.95/√n.
        z.sort()
        var d = 0.0
        for (i, x) in z.enumerated() {
            let cdf = 0.5 * erfc(-Double(x) / 2.0.squareRoot())
            d = max(d, abs(cdf - Double(i) / Double(n)), abs(cdf - Double(i + 1) / Double(n)))
        }
        XCTAssertLessThan(d, 1.95 / Double(n).squareRoot(), "KS statistic \(d)")
    }

    // Different tensorIds, streams and seeds (including neighbours) give uncorrelated z.
    func testStreamsAreUncorrelated() {
        let n = 1 << 18
        func draw(_ seed: UInt64, _ tid: UInt32, _ stream: UInt32) -> [Float] {
            var z = [Float](repeating: 0, count: n)
            zt_fill_normal(&z, zt_dtype(ZT_F32), Int64(n), 0, seed, tid, stream, 1)
            return z
        }
        let base = draw(1000, 5, 0)
        // Also the same stream shifted by one block (element i vs i+4): counters must not alias.
        let others = [draw(1001, 5, 0), draw(1000, 4, 0), draw(1000, 5, 1), draw(1000 | (1 << 32), 5, 0)]
        for other in others {
            XCTAssertLessThan(abs(correlation(base, other)), 5 / Double(n).squareRoot())
        }
        XCTAssertLessThan(abs(correlation(Array(base.dropFirst(4)), Array(base.dropLast(4)))), 5 / Double(n - 4).squareRoot())
    }

    // z for element i does not depend on chunking, offsets or the thread count, and the SIMD path
    // equals the scalar header function bit for bit.
    func testChunkAndThreadInvariance() {
        let n = 10_007
        let seed: UInt64 = 0xDEAD_BEEF, tid: UInt32 = 3
        let scalar = (0..<n).map { zt_normal_at(seed, tid, 0, UInt64($0)) }
        let saved = zt_num_threads()
        defer { zt_set_num_threads(saved) }
        for threads: Int32 in [1, 2, 3] {
            zt_set_num_threads(threads)
            var whole = [Float](repeating: 0, count: n)
            zt_fill_normal(&whole, zt_dtype(ZT_F32), Int64(n), 0, seed, tid, 0, 1)
            XCTAssertEqual(whole.map(\.bitPattern), scalar.map(\.bitPattern), "threads \(threads)")
        }
        for chunk in [1, 3, 5, 37, 64, 1000] {
            var pieces = [Float](repeating: 0, count: n)
            var start = 0
            while start < n {
                let len = min(chunk, n - start)
                pieces.withUnsafeMutableBufferPointer {
                    zt_fill_normal($0.baseAddress! + start, zt_dtype(ZT_F32), Int64(len), UInt64(start), seed, tid, 0, 1)
                }
                start += len
            }
            XCTAssertEqual(pieces.map(\.bitPattern), scalar.map(\.bitPattern), "chunk \(chunk)")
        }
    }
}

func correlation(_ a: [Float], _ b: [Float]) -> Double {
    let n = Double(min(a.count, b.count))
    var sa = 0.0, sb = 0.0, sab = 0.0, saa = 0.0, sbb = 0.0
    for (x, y) in zip(a, b) {
        let (dx, dy) = (Double(x), Double(y))
        sa += dx; sb += dy; sab += dx * dy; saa += dx * dx; sbb += dy * dy
    }
    let cov = sab / n - sa / n * sb / n
    return cov / ((saa / n - sa * sa / n / n) * (sbb / n - sb * sb / n / n)).squareRoot()
}
