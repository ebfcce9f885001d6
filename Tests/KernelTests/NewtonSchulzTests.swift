import Foundation
import XCTest
import ZOTuneKernels

/// Newton–Schulz quintic (ZO-Muon) against a naive double-precision implementation of the same
/// iteration, and the orthogonality it is for.
final class NewtonSchulzTests: XCTestCase {
    func naive(_ x: [Double], rows: Int, cols: Int, steps: Int) -> [Double] {
        let t = rows > cols
        let (r, c) = t ? (cols, rows) : (rows, cols)
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot() + 1e-7
        var X = [Double](repeating: 0, count: r * c)
        for i in 0..<rows { for j in 0..<cols { let v = x[i * cols + j] / norm; if t { X[j * c + i] = v } else { X[i * c + j] = v } } }
        func mm(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int, transB: Bool = false) -> [Double] {
            var out = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { var s = 0.0; for q in 0..<k { s += a[i * k + q] * (transB ? b[j * k + q] : b[q * n + j]) }; out[i * n + j] = s } }
            return out
        }
        for _ in 0..<steps {
            let A = mm(X, X, r, c, r, transB: true)
            let A2 = mm(A, A, r, r, r)
            let B = zip(A, A2).map { -4.7750 * $0 + 2.0315 * $1 }
            let BX = mm(B, X, r, r, c)
            X = zip(X, BX).map { 3.4445 * $0 + $1 }
        }
        var out = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { out[i * cols + j] = t ? X[j * c + i] : X[i * c + j] } }
        return out
    }

    func testAgainstNaiveAndOrthogonality() {
        for (rows, cols) in [(24, 40), (40, 24), (17, 17)] {
            var x = [Float](repeating: 0, count: rows * cols)
            zt_fill_normal(&x, zt_dtype(ZT_F32), Int64(x.count), 0, 77, UInt32(rows), 0, 1)
            let reference = naive(x.map(Double.init), rows: rows, cols: cols, steps: 5)
            var work = [Float](repeating: 0, count: Int(zt_newton_schulz_workspace(Int64(rows), Int64(cols))))
            zt_newton_schulz(&x, Int64(rows), Int64(cols), 5, &work)
            // Five iterations of f32 GEMMs on entries of size ~1/√cols: 1e-4 absolute leaves room
            // for the rounding growth of the polynomial (values ≤ ~1.2) and nothing for a bug.
            for (got, want) in zip(x, reference) { XCTAssertEqual(Double(got), want, accuracy: 1e-4, "\(rows)×\(cols)") }
            // O Oᵀ (the smaller side) is near I: the quintic maps singular values into ≈ [0.7, 1.2].
            let r = min(rows, cols)
            var worst = 0.0
            for i in 0..<r { for j in 0..<r {
                var s = 0.0
                for q in 0..<max(rows, cols) {
                    s += rows <= cols ? Double(x[i * cols + q]) * Double(x[j * cols + q])
                                      : Double(x[q * cols + i]) * Double(x[q * cols + j])
                }
                worst = max(worst, abs(s - (i == j ? 1 : 0)))
            } }
            XCTAssertLessThan(worst, 0.5, "‖OOᵀ − I‖_max = \(worst) for \(rows)×\(cols)")
        }
    }
}
