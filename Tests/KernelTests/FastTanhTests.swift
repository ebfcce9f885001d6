// The vectorized tanh behind soft-capping (Kernels/cpu/fast_tanh.h) against tanh in Double.
import Foundation
import XCTest
import ZOTuneKernels

final class FastTanhTests: XCTestCase {
    /// zt_softcap at cap 1 is zt_tanh itself (x / 1 and 1·y are exact). Inputs: every 1009th f32
    /// from 0 to 10 (tanh rounds to 1 in f32 from 9.01 on), every f32 within 2¹⁴ of the branch
    /// point 0.9 and of the measured worst cases, and their negatives. The bound is fast_tanh.h's
    /// derived one: 2.9u relative below 0.9 (fit 0.094u, c's roundings damped by |c|/tanh ≤ 0.256,
    /// the addition) and 3.8u above (e^{2a}'s 5u, the addition and the division on t ≤ 0.284,
    /// the subtraction), u = 2⁻²⁴; one bound of 3.8u for both. The measured maximum is ≤ 1.08 ulp
    /// over every f32 (≤ 2.2u); a wrong coefficient, branch point or exponent step moves results
    /// by far more, libm's tanhf would reach 2.19 ulp.
    func testTanhAgainstDouble() {
        var bits: [UInt32] = Array(stride(from: UInt32(0), to: Float(10).bitPattern, by: 1009))
        for center in [Float(0.9), 0.879400551, 0.975547433] {
            let c = center.bitPattern
            bits += Array((c - (1 << 14))...(c + (1 << 14)))
        }
        let x0 = bits.map { Float(bitPattern: $0) }.flatMap { [$0, -$0] }
        var y = x0
        zt_softcap(&y, Int64(y.count), 1)
        let u = 0x1p-24
        var worstRel = 0.0, worstUlp = 0.0, at: Float = 0
        for (x, got) in zip(x0, y) {
            let want = tanh(Double(x))
            let err = abs(Double(got) - want)
            if !(err <= 3.8 * u * abs(want)) {
                XCTFail("tanh(\(x)) = \(got), want \(want): \(err / (u * abs(want)))u relative (bound 3.8u)")
                return
            }
            if want != 0 {
                let rel = err / (u * abs(want)), ulp = err / Double(Float(abs(want)).ulp)
                if rel > worstRel { (worstRel, at) = (rel, x) }
                worstUlp = max(worstUlp, ulp)
            }
        }
        XCTAssertLessThanOrEqual(worstUlp, 1.08, "the exhaustive figure of fast_tanh.h (measured at every f32 < 10)")
        print("zt_tanh over \(x0.count) inputs: max \(worstRel)u relative at \(at), \(worstUlp) ulp")
        // Specials: signs of zero, subnormals as they are, saturation, NaN.
        var s: [Float] = [0, -0.0, 1e-40, -1e-40, 9.02, -20, .infinity, -.infinity, .nan]
        zt_softcap(&s, Int64(s.count), 1)
        XCTAssertEqual(s[0].bitPattern, Float(0).bitPattern)
        XCTAssertEqual(s[1].bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(s[2...7].map { $0 }, [1e-40, -1e-40, 1, -1, 1, -1])
        XCTAssertTrue(s[8].isNaN)
    }

    /// zt_gelu_tanh (GPT-2's gelu_new, Gemma's GeGLU gate) through zt_tanh, against the same formula
    /// in Double. Inputs: every 1009th f32 from 0 to 10 and their negatives (the cancellation region
    /// of x < 0 included down to where tanh rounds to −1), every 2¹⁶th up to 1e13 (x³ overflows f32
    /// from 7e12 on: the limits x and −0 must come out), and every f32 within 2¹² of 1, −0.75 (the
    /// minimum) and −3. The bound is fast_tanh.h's derived one, |Δ| ≤ u·(3.25|x| + 2|gelu x|),
    /// u = 2⁻²⁴ (the argument's 6u relative through (1 − tanh²)·u ≤ 0.448, zt_tanh's 3.8u, two
    /// roundings), with 0.1% for second-order terms and 2⁻¹⁴⁹ where 0.5·x is subnormal. A wrong
    /// constant (0.0447 for 0.044715 moves gelu(2) by 8.5e-6, 71u·|x|) or a dropped half far exceeds it.
    func testGeluTanhAgainstDouble() {
        var bits: [UInt32] = Array(stride(from: UInt32(0), to: Float(10).bitPattern, by: 1009))
        bits += Array(stride(from: Float(10).bitPattern, to: Float(1e13).bitPattern, by: 1 << 16))
        for center in [Float(1), 0.75, 3] {
            let c = center.bitPattern
            bits += Array((c - (1 << 12))...(c + (1 << 12)))
        }
        let x0 = bits.map { Float(bitPattern: $0) }.flatMap { [$0, -$0] }
        var y = [Float](repeating: .nan, count: x0.count)
        zt_gelu_tanh(&y, x0, Int64(x0.count))
        let u = 0x1p-24, k = (2 / Double.pi).squareRoot()
        var worstAbs = 0.0, worstRelPositive = 0.0, atAbs: Float = 0
        for (x, got) in zip(x0, y) {
            let d = Double(x), want = 0.5 * d * (1 + tanh(k * (d + 0.044715 * d * d * d)))
            let err = abs(Double(got) - want), bound = u * (3.25 * abs(d) + 2 * abs(want)) * 1.001 + 0x1p-149
            if !(err <= bound) {
                XCTFail("gelu_tanh(\(x)) = \(got), want \(want): |Δ| \(err), bound \(bound)")
                return
            }
            if abs(d) >= 0x1p-125, err / (u * abs(d)) > worstAbs { (worstAbs, atAbs) = (err / (u * abs(d)), x) }
            if d > 0 && want >= 0x1p-126 { worstRelPositive = max(worstRelPositive, err / (u * want)) }
        }
        print("zt_gelu_tanh over \(x0.count) inputs: max |Δ| \(worstAbs)u·|x| at \(atAbs) (bound 3.25 + 2|gelu|/|x|); x > 0: max \(worstRelPositive)u relative (bound 8.5)")
        // Specials: signs of zero, the limits where x³ overflows, ±∞ (−∞ gives NaN, ∞·0, as libm's and torch's f32 formula do), NaN.
        let s0: [Float] = [0, -0.0, 1e30, -1e30, .infinity, .nan]
        var s = s0
        zt_gelu_tanh(&s, s0, Int64(s.count))
        XCTAssertEqual(s[0].bitPattern, Float(0).bitPattern)
        XCTAssertEqual(s[1].bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(s[2], 1e30)
        XCTAssertEqual(s[3], 0)
        XCTAssertEqual(s[4], .infinity)
        XCTAssertTrue(s[5].isNaN)
    }
}
