import Foundation
import XCTest
import ZOTuneKernels

/// perturb / restore_update / perturbed_copy / fill_normal against naive element-by-element
/// references built on the scalar z of the header and on Swift's own float rounding.
final class PerturbTests: XCTestCase {
    let f32 = zt_dtype(ZT_F32), f16 = zt_dtype(ZT_F16), bf16 = zt_dtype(ZT_BF16)

    func randomWeights(_ n: Int, seed: UInt64 = 9) -> [Float] {
        var z = [Float](repeating: 0, count: n)
        zt_fill_normal(&z, f32, Int64(n), 0, seed, 0xABC, 7, 0.05)
        return z
    }

    func z(_ n: Int, seed: UInt64, tid: UInt32, first: UInt64 = 0) -> [Float] {
        (0..<n).map { zt_normal_at(seed, tid, 0, first + UInt64($0)) }
    }

    // +ε, −2ε, +ε returns f32 θ to within its rounding: each of the three FMAs rounds once by at
    // most 2^-24 of its result, and every intermediate is at most |θ| + 2ε|z| in magnitude, so
    // |θ' − θ| ≤ 3·2^-24·(|θ| + 2ε|z|).
    func testPerturbRoundTripF32() {
        let n = 4099, eps: Float = 1e-3
        let theta = randomWeights(n)
        var x = theta
        zt_perturb(&x, f32, Int64(n), 0, 77, 5, 0, eps)
        let plus = x
        zt_perturb(&x, f32, Int64(n), 0, 77, 5, 0, -2 * eps)
        zt_perturb(&x, f32, Int64(n), 0, 77, 5, 0, eps)
        let zs = z(n, seed: 77, tid: 5)
        for i in 0..<n {
            XCTAssertEqual(plus[i], theta[i].addingProduct(eps, zs[i]), "perturb is one fma")
            let bound = 3 * 0x1p-24 * (abs(theta[i]) + 2 * eps * abs(zs[i]))
            XCTAssertLessThanOrEqual(abs(x[i] - theta[i]), bound, "element \(i)")
        }
        XCTAssertNotEqual(plus, theta)
    }

    // In bf16 the same round trip is not exact (the reason for shadow mode); it stays within three
    // bf16 roundings, each at most 2^-8 of the value.
    func testPerturbRoundTripBF16IsBoundedButNotExact() {
        let n = 4096, eps: Float = 1e-3
        let theta = randomWeights(n).map { zt_f32_to_bf16($0) }
        var x = theta
        for a in [eps, -2 * eps, eps] { zt_perturb(&x, bf16, Int64(n), 0, 3, 1, 0, a) }
        let zs = z(n, seed: 3, tid: 1)
        var changed = 0
        for i in 0..<n {
            let t = zt_bf16_to_f32(theta[i]), r = zt_bf16_to_f32(x[i])
            XCTAssertLessThanOrEqual(abs(r - t), 3 * 0x1p-8 * (abs(t) + 2 * eps * abs(zs[i])) + 1e-30)
            if x[i] != theta[i] { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 0, "bf16 in-place round trip drifts; if not, the test is not exercising rounding")
    }

    // Fused restore_update against MeZO's update computed naively in double from the perturbed
    // state x: θr = x + εz, θ' = θr − η(g·z + λ·θr) (within its 3 f32 roundings), and against the
    // unfused kernel sequence (restore with perturb, then the SGD step in Swift).
    func testFusedRestoreUpdateMatchesUnfused() {
        let n = 5003, eps: Float = 1e-3, lr: Float = 1e-2, g: Float = 2.5, wd: Float = 0.1
        let theta = randomWeights(n)
        let zs = z(n, seed: 11, tid: 2)
        var fused = theta
        zt_perturb(&fused, f32, Int64(n), 0, 11, 2, 0, eps)
        zt_perturb(&fused, f32, Int64(n), 0, 11, 2, 0, -2 * eps)
        let perturbed = fused
        zt_restore_update(&fused, f32, Int64(n), 0, 11, 2, 0, eps, lr * g, lr * wd)
        var unfused = perturbed
        zt_perturb(&unfused, f32, Int64(n), 0, 11, 2, 0, eps)
        unfused = zip(unfused, zs).map { r, zi in r - (lr * g * zi + lr * wd * r) }
        for i in 0..<n {
            let r = Double(perturbed[i]) + Double(eps) * Double(zs[i])
            let exact = r - Double(lr) * (Double(g) * Double(zs[i]) + Double(wd) * r)
            let scale = abs(r) + Double(lr * g) * abs(Double(zs[i]))
            XCTAssertEqual(Double(fused[i]), exact, accuracy: 3 * 0x1p-24 * scale, "fused vs exact at \(i)")
            XCTAssertEqual(Double(fused[i]), Double(unfused[i]), accuracy: 6 * 0x1p-24 * scale, "fused vs unfused at \(i)")
        }
    }

    // The sign test: with g > 0 the update moves θ against z (θ_new − θ = −ηg·z), the bug native
    // MeZO ports get wrong. Then real MeZO steps on a quadratic loss must lower it.
    func testUpdateMovesAgainstZForPositiveGradient() {
        let n = 1024, eps: Float = 1e-3, lr: Float = 0.05, g: Float = 3
        let theta = randomWeights(n)
        var x = theta
        zt_perturb(&x, f32, Int64(n), 0, 5, 9, 0, eps)
        zt_perturb(&x, f32, Int64(n), 0, 5, 9, 0, -2 * eps)
        zt_restore_update(&x, f32, Int64(n), 0, 5, 9, 0, eps, lr * g, 0)
        let zs = z(n, seed: 5, tid: 9)
        for i in 0..<n where abs(zs[i]) > 1e-2 {
            XCTAssertEqual((x[i] - theta[i]).sign, zs[i] > 0 ? .minus : .plus, "element \(i)")
        }

        // L(θ) = ½‖θ − θ*‖²: MeZO with the kernels' own g must descend.
        let target = randomWeights(n, seed: 1234)
        func loss(_ v: [Float]) -> Double { zip(v, target).reduce(0) { $0 + 0.5 * pow(Double($1.0 - $1.1), 2) } }
        var w = [Float](repeating: 0, count: n)
        let start = loss(w)
        for step in 0..<200 {
            let seed = UInt64(step) &* 0x9E37_79B9_7F4A_7C15
            zt_perturb(&w, f32, Int64(n), 0, seed, 1, 0, eps)
            let lp = loss(w)
            zt_perturb(&w, f32, Int64(n), 0, seed, 1, 0, -2 * eps)
            let lm = loss(w)
            let grad = Float((lp - lm) / Double(2 * eps))
            zt_restore_update(&w, f32, Int64(n), 0, seed, 1, 0, eps, 1e-3 * grad, 0)
        }
        XCTAssertLessThan(loss(w), 0.9 * start, "MeZO on a quadratic did not descend: \(start) → \(loss(w))")
    }

    // f16/bf16 storage: one f32 fma, then one round to nearest even, checked against Swift's
    // Float16 conversion and an independent bf16 rounding.
    func testLowPrecisionPerturbMatchesReference() {
        let n = 3001, a: Float = 0.01
        let theta = randomWeights(n)
        let zs = z(n, seed: 21, tid: 4, first: 100)
        var h = theta.map { Float16($0).bitPattern }
        let hBefore = h
        zt_perturb(&h, f16, Int64(n), 100, 21, 4, 0, a)
        var b = theta.map { bf16Reference($0) }
        let bBefore = b
        zt_perturb(&b, bf16, Int64(n), 100, 21, 4, 0, a)
        for i in 0..<n {
            let hx = Float(Float16(bitPattern: hBefore[i]))
            XCTAssertEqual(h[i], Float16(hx.addingProduct(a, zs[i])).bitPattern, "f16 element \(i)")
            let bx = Float(bitPattern: UInt32(bBefore[i]) << 16)
            XCTAssertEqual(b[i], bf16Reference(bx.addingProduct(a, zs[i])), "bf16 element \(i)")
        }
    }

    // Replaying a step in one pass rounds exactly like the three passes of training, per dtype.
    func testReplayStepEqualsTheTrainingSequenceBitForBit() {
        let n = 1031, eps: Float = 1e-3
        let theta = randomWeights(n)
        for (dt, bits) in [(f32, 4), (bf16, 2), (f16, 2)] {
            var trained = [UInt8](repeating: 0, count: n * bits)
            theta.withUnsafeBytes { src in trained.withUnsafeMutableBytes { zt_convert($0.baseAddress, dt, src.baseAddress, f32, Int64(n)) } }
            var replayed = trained
            for (a2, restore) in [(-2 * eps, eps), (Float(0), -eps)] {   // two-sided, one-sided
                zt_perturb(&trained, dt, Int64(n), 0, 31, 8, 0, eps)
                if a2 != 0 { zt_perturb(&trained, dt, Int64(n), 0, 31, 8, 0, a2) }
                zt_restore_update(&trained, dt, Int64(n), 0, 31, 8, 0, restore, 0.02, 1e-3)
                zt_replay_step(&replayed, dt, Int64(n), 0, 31, 8, 0, eps, a2, restore, 0.02, 1e-3)
                XCTAssertEqual(replayed, trained, "dtype \(dt), a2 \(a2)")
            }
        }
    }

    func testPerturbedCopyAndFill() {
        let n = 2053, a: Float = -0.3
        let src = randomWeights(n)
        let zs = z(n, seed: 8, tid: 6)
        var out = [Float](repeating: .nan, count: n)
        zt_perturbed_copy(&out, f32, src, f32, Int64(n), 0, 8, 6, 0, a)
        XCTAssertEqual(out, zip(src, zs).map { $0.addingProduct(a, $1) })
        var outBF = [UInt16](repeating: 0, count: n)
        zt_perturbed_copy(&outBF, bf16, src, f32, Int64(n), 0, 8, 6, 0, a)
        XCTAssertEqual(outBF, zip(src, zs).map { bf16Reference($0.addingProduct(a, $1)) })
        var filled = [Float](repeating: 0, count: n)
        zt_fill_normal(&filled, f32, Int64(n), 0, 8, 6, 0, 2)
        XCTAssertEqual(filled, zs.map { 2 * $0 })
    }

    // Conversions against Swift's Float16 (all 65536 halves, and f32 values across the f16 range
    // including subnormals, overflow and NaN) and against an independent bf16 rounding.
    func testConversions() {
        for bits in 0...UInt16.max {
            let want = Float(Float16(bitPattern: bits))
            let got = zt_f16_to_f32(bits)
            if want.isNaN { XCTAssertTrue(got.isNaN) } else { XCTAssertEqual(got.bitPattern, want.bitPattern, "half \(bits)") }
        }
        var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 70000, .infinity, -.infinity,
                               0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 3e-8, 6.1e-5, .leastNonzeroMagnitude]
        var state: UInt32 = 7
        for _ in 0..<100_000 {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(bitPattern: (state & 0x807F_FFFF) | ((100 + (state >> 23) % 50) << 23)))
        }
        for v in values {
            XCTAssertEqual(zt_f32_to_f16(v), Float16(v).bitPattern, "f16 of \(v)")
            XCTAssertEqual(zt_f32_to_bf16(v), bf16Reference(v), "bf16 of \(v)")
            XCTAssertEqual(zt_bf16_to_f32(zt_f32_to_bf16(v)), Float(bitPattern: UInt32(bf16Reference(v)) << 16))
        }
        XCTAssertTrue(Float16(bitPattern: zt_f32_to_f16(.nan)).isNaN)
        XCTAssertTrue(zt_bf16_to_f32(zt_f32_to_bf16(.nan)).isNaN)
    }
}

/// bf16 by comparing the two neighbouring bf16 values in double (ties to the even one): an
/// algorithm independent of the kernels' bit trick.
func bf16Reference(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    let lo = UInt16(truncatingIfNeeded: x.bitPattern >> 16)   // toward zero
    let hi = lo &+ 1                                          // away from zero
    let vlo = Double(Float(bitPattern: UInt32(lo) << 16)), vhi = Double(Float(bitPattern: UInt32(hi) << 16))
    let dlo = abs(Double(x) - vlo), dhi = abs(Double(x) - vhi)
    if x.isInfinite || dlo < dhi { return lo }
    if dhi < dlo { return hi }
    return lo & 1 == 0 ? lo : hi
}
