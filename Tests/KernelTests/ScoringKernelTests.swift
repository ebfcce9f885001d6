import Foundation
import XCTest
import ZOTuneKernels

/// Kernels added for model forwards: target log-probs, strided 2-D copies, attention over a
/// KV cache with spare capacity — each against a naive computation.
final class ScoringKernelTests: XCTestCase {
    func testTokenLogProbsAgainstDoubleLogSoftmax() {
        let rows = 5, dim = 37
        let x = (0..<(rows * dim)).map { Float(sin(Double($0) * 0.7) * 8) }
        let targets: [Int32] = [0, 36, -1, 17, 40]
        var out = [Float](repeating: .nan, count: rows)
        zt_token_logprobs(&out, x, targets, Int64(rows), Int64(dim))
        for r in 0..<rows {
            let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
            let t = Int(targets[r])
            guard t >= 0 && t < dim else { XCTAssertEqual(out[r], 0); continue }
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            XCTAssertEqual(Double(out[r]), row[t] - lse, accuracy: 2e-5)   // f32 exp/log sums over 37 terms
        }
    }

    func testCopy2D() {
        let src = (0..<30).map(Float.init)   // (5, 6)
        var dst = [Float](repeating: -1, count: 4 * 8)
        zt_copy_2d(&dst, 8, src, 6, 4, 3)
        for r in 0..<4 { for c in 0..<8 { XCTAssertEqual(dst[r * 8 + c], c < 3 ? src[r * 6 + c] : -1) } }
    }

    // Attention reading the first S positions of a cache with capacity S_cap equals attention on
    // the same keys packed without spare capacity.
    func testAttentionOverCacheCapacity() {
        let (B, T, S, cap, H, D) = (2, 2, 5, 8, 2, 4)
        func val(_ i: Int, _ salt: Int) -> Float { Float(sin(Double(i * 31 + salt))) }
        let q = (0..<(B * T * H * D)).map { val($0, 1) }
        var kCap = [Float](repeating: 99, count: B * cap * H * D), vCap = kCap
        var kPacked = [Float](repeating: 0, count: B * S * H * D), vPacked = kPacked
        var maskCap = [UInt8](repeating: 0, count: B * cap), maskPacked = [UInt8](repeating: 1, count: B * S)
        for b in 0..<B { for s in 0..<S { for e in 0..<(H * D) {
            let k = val((b * S + s) * H * D + e, 2), v = val((b * S + s) * H * D + e, 3)
            kCap[(b * cap + s) * H * D + e] = k; vCap[(b * cap + s) * H * D + e] = v
            kPacked[(b * S + s) * H * D + e] = k; vPacked[(b * S + s) * H * D + e] = v
        } } }
        for b in 0..<B { for s in 0..<S { maskCap[b * cap + s] = (b == 1 && s == 0) ? 0 : 1; maskPacked[b * S + s] = maskCap[b * cap + s] } }
        var a = [Float](repeating: 0, count: q.count), p = a
        zt_attention(&a, q, kCap, vCap, maskCap, Int64(B), Int64(T), Int64(S), Int64(cap), Int64(H), Int64(H), Int64(D), 0.5, 0, 0)
        zt_attention(&p, q, kPacked, vPacked, maskPacked, Int64(B), Int64(T), Int64(S), Int64(S), Int64(H), Int64(H), Int64(D), 0.5, 0, 0)
        XCTAssertEqual(a, p)
        XCTAssertFalse(a.contains { $0.isNaN || abs($0) > 1.5 }, "spare capacity (99s) leaked into the result")
    }
}
