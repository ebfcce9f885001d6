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
}
