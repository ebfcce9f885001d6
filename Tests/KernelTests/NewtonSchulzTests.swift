import Foundation
import XCTest
import ZOTuneKernels

/// Newton–Schulz (zt_newton_schulz, both polynomials) against outside references: the float64
/// closed-form values of ZO-FAMILY.md §4.7–§4.8 (NS acts on singular values only, so diagonal
/// inputs have exact answers), singular values measured by a Jacobi eigen-solver in double, and a
/// naive double implementation of the iteration.
final class NewtonSchulzTests: XCTestCase {
    typealias Poly = (a: Double, b: Double, c: Double)
    let quintic: Poly = (3.4445, -4.7750, 2.0315)
    let cubic: Poly = (1.5, -0.5, 0)

    /// The kernel on a host matrix (src and dst distinct unless `inPlace`).
    func ns(_ x: [Float], rows: Int, cols: Int, steps: Int, _ p: Poly, inPlace: Bool = false) -> [Float] {
        var work = [Float](repeating: .nan, count: Int(zt_newton_schulz_workspace(Int64(rows), Int64(cols))))
        var out = [Float](repeating: .nan, count: x.count)
        if inPlace {
            var y = x
            y.withUnsafeMutableBufferPointer { zt_newton_schulz($0.baseAddress, $0.baseAddress, Int64(rows), Int64(cols), Int32(steps), Float(p.a), Float(p.b), Float(p.c), &work) }
            return y
        }
        zt_newton_schulz(x, &out, Int64(rows), Int64(cols), Int32(steps), Float(p.a), Float(p.b), Float(p.c), &work)
        return out
    }

    /// The iteration written naively in double: X ← aX + b(XXᵀ)X + c(XXᵀ)²X.
    func naive(_ x: [Double], rows: Int, cols: Int, steps: Int, _ p: Poly) -> [Double] {
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
            let AX = mm(A, X, r, r, c)
            let AAX = mm(A, AX, r, r, c)
            X = (0..<X.count).map { p.a * X[$0] + p.b * AX[$0] + p.c * AAX[$0] }
        }
        var out = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { out[i * cols + j] = t ? X[j * c + i] : X[i * c + j] } }
        return out
    }

    /// Singular values of x (rows × cols), from the eigenvalues of the smaller Gram matrix by
    /// cyclic Jacobi rotations in double.
    func singularValues(_ x: [Float], rows: Int, cols: Int) -> [Double] {
        let r = min(rows, cols), n = max(rows, cols)
        func at(_ i: Int, _ q: Int) -> Double { rows <= cols ? Double(x[i * cols + q]) : Double(x[q * cols + i]) }
        var g = [Double](repeating: 0, count: r * r)
        for i in 0..<r { for j in 0..<r { var s = 0.0; for q in 0..<n { s += at(i, q) * at(j, q) }; g[i * r + j] = s } }
        for _ in 0..<50 {
            var off = 0.0
            for i in 0..<r { for j in 0..<r where i != j { off += g[i * r + j] * g[i * r + j] } }
            if off < 1e-26 { break }
            for p in 0..<r { for q in (p + 1)..<r where abs(g[p * r + q]) > 1e-300 {
                let theta = (g[q * r + q] - g[p * r + p]) / (2 * g[p * r + q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<r {  // columns p, q
                    let gkp = g[k * r + p], gkq = g[k * r + q]
                    g[k * r + p] = c * gkp - s * gkq; g[k * r + q] = s * gkp + c * gkq
                }
                for k in 0..<r {  // rows p, q
                    let gpk = g[p * r + k], gqk = g[q * r + k]
                    g[p * r + k] = c * gpk - s * gqk; g[q * r + k] = s * gpk + c * gqk
                }
            } }
        }
        return (0..<r).map { max(g[$0 * r + $0], 0).squareRoot() }.sorted()
    }

    func gaussian(_ rows: Int, _ cols: Int, seed: UInt64) -> [Float] {
        var x = [Float](repeating: 0, count: rows * cols)
        zt_fill_normal(&x, zt_dtype(ZT_F32), Int64(x.count), 0, seed, UInt32(rows * 1000 + cols), 0, 1)
        return x
    }

    // ZO-FAMILY.md §4.8: σ/‖·‖ = (0.6, 0.8) for diag(3, 4), (≈1, 0.01) for diag(1, 0.01); the
    // quintic oscillates, it does not converge.
    func testQuinticOnDiagonalMatchesTheClosedForms() {
        let cases: [([Float], steps: Int, expected: [Double])] = [
            ([3, 0, 0, 4], 5, [0.72288, 1.11920]), ([3, 0, 0, 4], 10, [1.07681, 0.73841]),
            ([1, 0, 0, 0.01], 5, [0.69649, 0.69889]), ([1, 0, 0, 0.01], 10, [1.12525, 1.12197]),
        ]
        for (m, steps, expected) in cases {
            let out = ns(m, rows: 2, cols: 2, steps: steps, quintic)
            // The published values are rounded to 5 decimals; f32 adds a few 1e-7.
            XCTAssertEqual(Double(out[0]), expected[0], accuracy: 1e-5, "diag(\(m[0]), \(m[3])), \(steps) iterations")
            XCTAssertEqual(Double(out[3]), expected[1], accuracy: 1e-5, "diag(\(m[0]), \(m[3])), \(steps) iterations")
            XCTAssertEqual(out[1], 0); XCTAssertEqual(out[2], 0)
        }
    }

    // §4.8: cubic K = 10 on a Gaussian 64×256 puts every singular value in [0.99999, 1.00000]
    // (float64); f32 rounding allows one more 1e-5 above. The quintic stays in ≈ [0.682, 1.134].
    func testSingularValuesOnAGaussian() {
        let x = gaussian(64, 256, seed: 5)
        let c = singularValues(ns(x, rows: 64, cols: 256, steps: 10, cubic), rows: 64, cols: 256)
        XCTAssertGreaterThanOrEqual(c.first!, 0.99999, "cubic σ_min")
        XCTAssertLessThanOrEqual(c.last!, 1.00001, "cubic σ_max")
        for steps in [5, 10] {
            let q = singularValues(ns(x, rows: 64, cols: 256, steps: steps, quintic), rows: 64, cols: 256)
            XCTAssertGreaterThan(q.first!, 0.675, "quintic σ_min after \(steps)")
            XCTAssertLessThan(q.last!, 1.14, "quintic σ_max after \(steps)")
            XCTAssertLessThan(q.first!, 0.9, "the quintic does not converge to 1 (\(steps) iterations)")
        }
        // Before any iteration the spread is wide: the test above is not passing vacuously.
        let s0 = singularValues(x, rows: 64, cols: 256)
        XCTAssertGreaterThan(s0.last! / s0.first!, 2)
    }

    func testAgainstNaiveDouble() {
        for (rows, cols) in [(24, 40), (40, 24), (17, 17), (1, 9)] {
            let x = gaussian(rows, cols, seed: 77)
            for (name, p) in [("quintic", quintic), ("cubic", cubic)] {
                let reference = naive(x.map(Double.init), rows: rows, cols: cols, steps: 5, p)
                for inPlace in [false, true] {
                    let out = ns(x, rows: rows, cols: cols, steps: 5, p, inPlace: inPlace)
                    // Five iterations of f32 GEMMs on entries of size ~1/√cols: 1e-4 absolute
                    // leaves room for rounding growth (values ≤ ~1.2) and nothing for a bug.
                    for (got, want) in zip(out, reference) {
                        XCTAssertEqual(Double(got), want, accuracy: 1e-4, "\(name) \(rows)×\(cols) inPlace \(inPlace)")
                    }
                }
            }
        }
    }

    /// newton_schulz_batched: matrices stored one after another, each against the naive double
    /// iteration (the bound of testAgainstNaiveDouble) and bit for bit what the single-matrix kernel
    /// gives it (the CPU runs it matrix by matrix on workspace slices), in place too.
    func testBatchedIsPerMatrix() {
        for (batch, rows, cols) in [(3, 24, 40), (2, 40, 24), (5, 1, 9)] {
            let n = rows * cols
            let x = gaussian(batch * rows, cols, seed: 78).enumerated().map { $1 * Float(1 + $0 / n) }  // other norms
            for (name, p) in [("quintic", quintic), ("cubic", cubic)] {
                var work = [Float](repeating: .nan, count: batch * Int(zt_newton_schulz_workspace(Int64(rows), Int64(cols))))
                var out = [Float](repeating: .nan, count: x.count)
                zt_newton_schulz_batched(x, &out, Int64(batch), Int64(rows), Int64(cols), 5, Float(p.a), Float(p.b), Float(p.c), &work)
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer {
                    zt_newton_schulz_batched($0.baseAddress, $0.baseAddress, Int64(batch), Int64(rows), Int64(cols), 5,
                                             Float(p.a), Float(p.b), Float(p.c), &work)
                }
                XCTAssertEqual(inPlace.map(\.bitPattern), out.map(\.bitPattern), "\(name) \(batch)×\(rows)×\(cols) in place")
                for m in 0..<batch {
                    let xm = Array(x[(m * n)..<((m + 1) * n)]), got = Array(out[(m * n)..<((m + 1) * n)])
                    XCTAssertEqual(got.map(\.bitPattern), ns(xm, rows: rows, cols: cols, steps: 5, p).map(\.bitPattern),
                                   "\(name) matrix \(m) of \(batch)×\(rows)×\(cols): batched == single")
                    let reference = naive(xm.map(Double.init), rows: rows, cols: cols, steps: 5, p)
                    for (g, want) in zip(got, reference) { XCTAssertEqual(Double(g), want, accuracy: 1e-4, "\(name) matrix \(m)") }
                }
            }
        }
    }

    // §4.8: NS is odd and starts with a Frobenius normalisation, so NS(g·Z) = sign(g)·NS(Z): the
    // released ZO-Muon's matrix updates keep one bit of the loss difference.
    func testScaleAndSignInvariance() {
        let z = gaussian(32, 48, seed: 3)
        let base = ns(z, rows: 32, cols: 48, steps: 10, quintic)
        for g: Float in [3.7e-3, -250, 1] {
            let out = ns(z.map { g * $0 }, rows: 32, cols: 48, steps: 10, quintic)
            let sg: Float = g > 0 ? 1 : -1
            let worst = zip(out, base).map { abs($0 - sg * $1) }.max()!
            XCTAssertLessThan(worst, 1e-5, "NS(\(g)·Z) vs sign·NS(Z)")
        }
    }

    // §4.7: after normalisation one non-zero entry has σ = 1, a fixed point of 1.5x − 0.5x³ for any K;
    // the quintic maps σ = 1 to a + b + c = 0.701 in one step: which polynomial is wired in.
    func testSingleEntry() {
        var m = [Float](repeating: 0, count: 6 * 9)
        m[2 * 9 + 7] = -0.37
        for k in [1, 10] {
            let out = ns(m, rows: 6, cols: 9, steps: k, cubic)
            for (i, v) in out.enumerated() { XCTAssertEqual(v, i == 2 * 9 + 7 ? -1 : 0, accuracy: 1e-6, "cubic K = \(k), entry \(i)") }
        }
        let q = ns(m, rows: 6, cols: 9, steps: 1, quintic)
        XCTAssertEqual(q[2 * 9 + 7], -0.701, accuracy: 1e-5)
    }
}
