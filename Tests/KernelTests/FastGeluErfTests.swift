// The vectorized exact GELU behind GPT-NeoX/Pythia's MLP (Kernels/cpu/fast_erf.h) against
// ½x·erfc(−x/√2) in Double.
import Foundation
import XCTest
import ZOTuneKernels

final class FastGeluErfTests: XCTestCase {
    /// zt_gelu_erf over every 1009th f32 from 0 to 20 (gelu is x from 5.9 on, −0 below −13.2 where
    /// e^{−a²} underflows), every f32 within 2¹⁴ of the measured worst cases (0.0445 baseline,
    /// 0.0351 with FMA: where the A&S fit errs most, 1.39e-7 at a = 0.045) and of −3 (the
    /// cancellation region of the libm form), all with both signs. The bound is fast_erf.h's derived
    /// one, |Δ| ≤ u·(6.7|x| + 2|gelu x|), u = 2⁻²⁴, plus 2⁻¹⁴⁹ where ½x is subnormal. Measured over
    /// every 7th f32 of (−20, 20): ≤ 0.75 of it (5.8u·|x|; torch's own AVX2 gelu, the same fit,
    /// reaches 4.5u·|x|). A wrong coefficient (p = 0.3275) moves erfc by ~1e-5 and fails at once.
    func testGeluErfAgainstDouble() {
        var bits: [UInt32] = Array(stride(from: UInt32(0), to: Float(20).bitPattern, by: 1009))
        for center in [Float(0.0445248), 0.0350572, 3] {
            let c = center.bitPattern
            bits += Array((c - (1 << 14))...(c + (1 << 14)))
        }
        let x0 = bits.map { Float(bitPattern: $0) }.flatMap { [$0, -$0] }
        var y = [Float](repeating: .nan, count: x0.count)
        zt_gelu_erf(&y, x0, Int64(x0.count))
        let u = 0x1p-24
        var worst = 0.0, at: Float = 0
        for (x, got) in zip(x0, y) {
            let d = Double(x), want = 0.5 * d * erfc(-d / 2.0.squareRoot())
            let err = abs(Double(got) - want), bound = u * (6.7 * abs(d) + 2 * abs(want)) + 0x1p-149
            if !(err <= bound) {
                XCTFail("gelu_erf(\(x)) = \(got), want \(want): |Δ| \(err), bound \(bound)")
                return
            }
            if err / bound > worst { (worst, at) = (err / bound, x) }
        }
        print("zt_gelu_erf over \(x0.count) inputs: max |Δ| \(worst) of the bound at \(at)")
        // Specials: the sign of zero, the limits, NaN (as ½x(1 + erf(x/√2)) gives them).
        let s: [Float] = [0, -0.0, 20, -20, .infinity, -.infinity, .nan]
        var g = [Float](repeating: 1, count: s.count)
        zt_gelu_erf(&g, s, Int64(s.count))
        XCTAssertEqual(g[0].bitPattern, Float(0).bitPattern)
        XCTAssertEqual(g[1].bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(g[2], 20)
        XCTAssertEqual(g[3], 0)
        XCTAssertEqual(g[4], .infinity)
        XCTAssertTrue(g[5].isNaN && g[6].isNaN)
    }
}
