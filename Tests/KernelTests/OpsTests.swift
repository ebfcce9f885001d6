// CPU transformer ops (zt_cpu.h) against naive Swift references, mostly in Double.
import XCTest
import ZOTuneKernels

/// Deterministic xorshift64 inputs so that failures reproduce.
private struct Rng {
    var s: UInt64
    init(_ seed: UInt64) { s = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        s ^= s << 13
        s ^= s >> 7
        s ^= s << 17
        return s
    }
    /// Uniform in [lo, hi) with 24 random mantissa bits.
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
    mutating func array(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in uniform(lo, hi) }
    }
}

/// Fails at the first element with |got − want| > abs + rel·|want| (NaN always fails).
private func assertClose(_ got: [Float], _ want: [Double], abs: Double, rel: Double = 0, _ what: String,
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(what): count", file: file, line: line)
    for i in 0..<min(got.count, want.count) {
        let err = Swift.abs(Double(got[i]) - want[i])
        if !(err <= abs + rel * Swift.abs(want[i])) {
            XCTFail("\(what): [\(i)] got \(got[i]) want \(want[i]) err \(err)", file: file, line: line)
            return
        }
    }
}

/// Bitwise equality (distinguishes −0/+0 and compares NaN payloads).
private func assertBitwise(_ got: [Float], _ want: [Float], _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(what): count", file: file, line: line)
    for i in 0..<min(got.count, want.count) where got[i].bitPattern != want[i].bitPattern {
        XCTFail("\(what): [\(i)] got \(got[i]) want \(want[i])", file: file, line: line)
        return
    }
}

private func withOptional<T, R>(_ a: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let a else { return body(nil) }
    return a.withUnsafeBufferPointer { body($0.baseAddress) }
}

private let dims = [1, 7, 33, 129]
private let rowCounts = [1, 3, 17]

final class OpsTests: XCTestCase {
    // MARK: Elementwise

    func testAddMulScaleExactAndAliasing() {
        var rng = Rng(1)
        // 40_000 exceeds one task's grain, so the threaded path runs too.
        for n in [1, 7, 33, 129, 40_000] {
            let a = rng.array(n, -3, 3), b = rng.array(n, -3, 3)
            // A single IEEE op per element: the result must equal Swift's Float op exactly.
            let sum = zip(a, b).map { $0 + $1 }, prod = zip(a, b).map { $0 * $1 }, scaled = a.map { 0.37 * $0 }
            var out = [Float](repeating: .nan, count: n)
            zt_add(&out, a, b, Int64(n)); assertBitwise(out, sum, "add n=\(n)")
            zt_mul(&out, a, b, Int64(n)); assertBitwise(out, prod, "mul n=\(n)")
            zt_scale(&out, a, 0.37, Int64(n)); assertBitwise(out, scaled, "scale n=\(n)")
            // out aliasing a, then b.
            var x = a
            x.withUnsafeMutableBufferPointer { p in zt_add(p.baseAddress, p.baseAddress, b, Int64(n)) }
            assertBitwise(x, sum, "add out==a n=\(n)")
            x = b
            x.withUnsafeMutableBufferPointer { p in zt_mul(p.baseAddress, a, p.baseAddress, Int64(n)) }
            assertBitwise(x, prod, "mul out==b n=\(n)")
            x = a
            x.withUnsafeMutableBufferPointer { p in zt_scale(p.baseAddress, p.baseAddress, 0.37, Int64(n)) }
            assertBitwise(x, scaled, "scale in place n=\(n)")
        }
    }

    /// In place (out == an input) the elementwise and row kernels give the out-of-place bits: the
    /// same per-element operations, now in the vector body (ZT_ELEMENTWISE) where clang's overlap
    /// check used to send out == x to the scalar loop. 4 099 elements: vector body and scalar tail.
    func testInPlaceEqualsOutOfPlaceBitForBit() {
        var rng = Rng(11)
        let n = 4099
        let a = rng.array(n, -9, 9), b = rng.array(n, -3, 3)
        typealias Unary = (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, Int64) -> Void
        let unary: [(String, Unary)] = [("relu", zt_relu), ("silu", zt_silu), ("gelu_tanh", zt_gelu_tanh), ("gelu_erf", zt_gelu_erf),
                                        ("scale", { zt_scale($0, $1, 0.37, $2) }),
                                        ("softmax", { zt_softmax($0, $1, 1, $2) }), ("log_softmax", { zt_log_softmax($0, $1, 1, $2) })]
        for (name, f) in unary {
            var out = [Float](repeating: .nan, count: n), y = a
            f(&out, a, Int64(n))
            y.withUnsafeMutableBufferPointer { f($0.baseAddress, $0.baseAddress, Int64(n)) }
            assertBitwise(y, out, "\(name) in place")
        }
        typealias Binary = (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int64) -> Void
        for (name, f) in [("add", zt_add), ("mul", zt_mul), ("swiglu", zt_swiglu)] as [(String, Binary)] {
            var out = [Float](repeating: .nan, count: n), y = a, z = b
            f(&out, a, b, Int64(n))
            y.withUnsafeMutableBufferPointer { f($0.baseAddress, $0.baseAddress, b, Int64(n)) }
            z.withUnsafeMutableBufferPointer { f($0.baseAddress, a, $0.baseAddress, Int64(n)) }
            assertBitwise(y, out, "\(name) out == first input")
            assertBitwise(z, out, "\(name) out == second input")
        }
    }

    func testAddRows() {
        var rng = Rng(2)
        // 300×129 spans several tasks.
        for (rows, dim) in rowCounts.flatMap({ r in dims.map { (r, $0) } }) + [(300, 129)] {
            let x0 = rng.array(rows * dim), bias = rng.array(dim)
            var x = x0
            zt_add_rows(&x, bias, Int64(rows), Int64(dim))
            let want = (0..<rows * dim).map { x0[$0] + bias[$0 % dim] }  // one exact f32 add each
            assertBitwise(x, want, "add_rows \(rows)x\(dim)")
        }
    }

    func testActivations() {
        var rng = Rng(3)
        let specials: [Float] = [0, -0.0, 1e-8, -1e-8, 20, -20, 88, -88, -100, 100]
        for n in [1, 7, 33, 129, 10_000] {
            let x = Array((specials + rng.array(n, -10, 10)).prefix(max(n, specials.count)))
            let g = rng.array(x.count, -10, 10), u = rng.array(x.count, -3, 3)
            let m = x.count
            var out = [Float](repeating: .nan, count: m)

            // relu is exact: max(x, 0).
            zt_relu(&out, x, Int64(m))
            assertBitwise(out, x.map { $0 > 0 ? $0 : 0 }, "relu n=\(n)")

            let silu: (Double) -> Double = { $0 / (1 + exp(-$0)) }
            // expf and one divide: a few ulp relative; abs 1e-30 covers f32 underflow for x ≪ 0.
            zt_silu(&out, x, Int64(m))
            assertClose(out, x.map { silu(Double($0)) }, abs: 1e-30, rel: 1e-6, "silu n=\(n)")
            zt_swiglu(&out, g, u, Int64(m))
            assertClose(out, (0..<m).map { silu(Double(g[$0])) * Double(u[$0]) }, abs: 1e-30, rel: 2e-6, "swiglu n=\(n)")

            // 1 + tanh/erf cancels for x < 0, so the f32 error is absolute, ~ |x|·ulp(1); 1e-6·(1+|x|)
            // is 16 ulp and still far below the ~1e-3 gap between the two GELU forms.
            let k = (2.0 / Double.pi).squareRoot()
            zt_gelu_tanh(&out, x, Int64(m))
            for i in 0..<m {
                let v = Double(x[i]), want = 0.5 * v * (1 + tanh(k * (v + 0.044715 * v * v * v)))
                XCTAssertEqual(Double(out[i]), want, accuracy: 1e-6 * (1 + abs(v)), "gelu_tanh x=\(v)")
            }
            zt_gelu_erf(&out, x, Int64(m))
            for i in 0..<m {
                let v = Double(x[i]), want = 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
                XCTAssertEqual(Double(out[i]), want, accuracy: 1e-6 * (1 + abs(v)), "gelu_erf x=\(v)")
            }

            // In place: out == x (and out == gate for swiglu).
            var y = x
            y.withUnsafeMutableBufferPointer { p in zt_silu(p.baseAddress, p.baseAddress, Int64(m)) }
            assertClose(y, x.map { silu(Double($0)) }, abs: 1e-30, rel: 1e-6, "silu in place n=\(n)")
            y = x
            y.withUnsafeMutableBufferPointer { p in zt_relu(p.baseAddress, p.baseAddress, Int64(m)) }
            assertBitwise(y, x.map { $0 > 0 ? $0 : 0 }, "relu in place n=\(n)")
            y = g
            y.withUnsafeMutableBufferPointer { p in zt_swiglu(p.baseAddress, p.baseAddress, u, Int64(m)) }
            assertClose(y, (0..<m).map { silu(Double(g[$0])) * Double(u[$0]) }, abs: 1e-30, rel: 2e-6, "swiglu out==gate")
            y = x
            y.withUnsafeMutableBufferPointer { p in zt_gelu_erf(p.baseAddress, p.baseAddress, Int64(m)) }
            for i in 0..<m {
                let v = Double(x[i])
                XCTAssertEqual(Double(y[i]), 0.5 * v * (1 + erf(v / 2.0.squareRoot())), accuracy: 1e-6 * (1 + abs(v)))
            }
        }
        // relu propagates NaN (as torch.relu does).
        var o: [Float] = [0]
        zt_relu(&o, [Float.nan], 1)
        XCTAssertTrue(o[0].isNaN)
    }

    /// zt_softcap: x = cap·tanh(x / cap) against tanh in Double. Each f32 step rounds once: the
    /// division (relative u = 2⁻²⁴, which tanh passes on damped: y·sech²y ≤ tanh y), zt_tanh
    /// (fast_tanh.h: ≤ 3.8u relative derived, ≤ 1.08 ulp measured over every f32; FastTanhTests)
    /// and the product (u): ≤ 5.8u, 8u relative allowed. The absolute 8·cap·2⁻¹⁴⁹ covers x/cap
    /// in the subnormal range (absolute, not relative, rounding). Wrong order (cap·tanh(x)/cap) or a
    /// missing cap moves the results by O(1).
    func testSoftcap() {
        var rng = Rng(4)
        let specials: [Float] = [0, -0.0, 1e-40, -1e-40, 1e-8, 29.9, -30, 88, -1000, 1e30, .infinity, -.infinity]
        for cap: Float in [30, 50, 0.5] {
            for n in [1, 7, 12, 10_000] {  // 10 000 exceeds one task's grain: the threaded path runs
                let x0 = Array((specials + rng.array(n, -4 * cap, 4 * cap)).prefix(max(n, specials.count)))
                var x = x0
                zt_softcap(&x, Int64(x.count), cap)
                let c = Double(cap)
                let want = x0.map { c * tanh(Double($0) / c) }
                assertClose(x, want, abs: 8 * c * 0x1p-149, rel: 8 * 0x1p-24, "softcap \(cap) n=\(n)")
                XCTAssertEqual(x[1].sign, .minus, "−0 stays −0")
            }
        }
        var nan: [Float] = [.nan, 3]
        zt_softcap(&nan, 2, 2)
        XCTAssertTrue(nan[0].isNaN)
        XCTAssertEqual(Double(nan[1]), 2 * tanh(1.5), accuracy: 8 * 0x1p-24 * 2)
        // A cap that is not positive and finite leaves x as it is (the Swift backend refuses it first).
        for cap: Float in [0, -1, .nan, .infinity] {
            var y: [Float] = [0.5, -7]
            zt_softcap(&y, 2, cap)
            XCTAssertEqual(y, [0.5, -7], "cap \(cap)")
        }
    }

    // MARK: Rows

    private func refSoftmax(_ x: [Float], _ rows: Int, _ dim: Int, log: Bool) -> [Double] {
        var out = [Double](repeating: 0, count: rows * dim)
        for r in 0..<rows {
            let row = x[r * dim..<(r + 1) * dim].map(Double.init)
            let m = row.max()!
            let s = row.reduce(0) { $0 + exp($1 - m) }
            for j in 0..<dim { out[r * dim + j] = log ? row[j] - m - Foundation.log(s) : exp(row[j] - m) / s }
        }
        return out
    }

    func testSoftmaxAndLogSoftmax() {
        var rng = Rng(4)
        for (rows, dim) in rowCounts.flatMap({ r in dims.map { (r, $0) } }) + [(200, 129)] {
            var x = rng.array(rows * dim, -8, 8)
            x[0] += 1000  // large logits: only max subtraction keeps exp finite
            let n = rows * dim
            var out = [Float](repeating: .nan, count: n)
            // x − max rounds by up to ulp(16)/2 ≈ 1e-6 absolute in the exponent, i.e. relative in p.
            zt_softmax(&out, x, Int64(rows), Int64(dim))
            assertClose(out, refSoftmax(x, rows, dim, log: false), abs: 1e-12, rel: 4e-6, "softmax \(rows)x\(dim)")
            var y = x
            y.withUnsafeMutableBufferPointer { p in zt_softmax(p.baseAddress, p.baseAddress, Int64(rows), Int64(dim)) }
            assertClose(y, refSoftmax(x, rows, dim, log: false), abs: 1e-12, rel: 4e-6, "softmax in place \(rows)x\(dim)")

            // Same ~1e-6 from x − max plus ulp-level errors of log(sum) and the final subtraction.
            let wantLog = refSoftmax(x, rows, dim, log: true)
            zt_log_softmax(&out, x, Int64(rows), Int64(dim))
            assertClose(out, wantLog, abs: 2e-6, rel: 1e-6, "log_softmax \(rows)x\(dim)")
            y = x
            y.withUnsafeMutableBufferPointer { p in zt_log_softmax(p.baseAddress, p.baseAddress, Int64(rows), Int64(dim)) }
            assertClose(y, wantLog, abs: 2e-6, rel: 1e-6, "log_softmax in place \(rows)x\(dim)")
        }
        // −inf logits (masked vocabulary) get probability 0, the rest still normalise.
        var out = [Float](repeating: .nan, count: 3)
        zt_softmax(&out, [-.infinity, 0, 0], 1, 3)
        XCTAssertEqual(out, [0, 0.5, 0.5])
        zt_log_softmax(&out, [-.infinity, 0, 0], 1, 3)
        XCTAssertEqual(out[0], -.infinity)
        XCTAssertEqual(Double(out[1]), -log(2.0), accuracy: 1e-7)  // ulp(0.69) ≈ 6e-8
    }

    func testLayerNorm() {
        var rng = Rng(5)
        for (rows, dim) in rowCounts.flatMap({ r in dims.map { (r, $0) } }) + [(200, 129)] {
            var x = rng.array(rows * dim, -1, 1)
            // Row 1 sits on a large offset (two-pass variance must not cancel); the last row has
            // variance ~3e-7 ≪ eps, so eps dominates and must be inside the sqrt (centred at 0, as
            // rstd ≈ 300 would otherwise amplify the unavoidable ulp(mean) error of an f32 mean).
            if rows > 1 { for j in 0..<dim { x[dim + j] += 30 } }
            if rows > 2 { for j in 0..<dim { x[(rows - 1) * dim + j] *= 1e-3 } }
            let gamma = rng.array(dim, 0.5, 2), beta = rng.array(dim)
            for (g, b) in [(gamma, beta), (nil, nil), (gamma, nil), (nil, beta)] as [([Float]?, [Float]?)] {
                for eps: Float in [1e-5, 0.1] {
                    var want = [Double](repeating: 0, count: rows * dim)
                    for r in 0..<rows {
                        let row = x[r * dim..<(r + 1) * dim].map(Double.init)
                        let mean = row.reduce(0, +) / Double(dim)
                        let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(dim)  // biased
                        for j in 0..<dim {
                            want[r * dim + j] = (row[j] - mean) / (v + Double(eps)).squareRoot()
                                * Double(g?[j] ?? 1) + Double(b?[j] ?? 0)
                        }
                    }
                    // The f32 mean is off by up to ulp(30)/2 ≈ 1e-6 on the offset row; × rstd (≤ ~3 for
                    // 7 samples) × γ ≤ 2 gives ~6e-6 (5e-6 seen), plus ulp-level affine rounding.
                    let tol = 2e-5
                    var out = [Float](repeating: .nan, count: rows * dim)
                    withOptional(g) { gp in withOptional(b) { bp in
                        zt_layernorm(&out, x, gp, bp, Int64(rows), Int64(dim), eps)
                    } }
                    assertClose(out, want, abs: tol, rel: 1e-6, "layernorm \(rows)x\(dim) γ=\(g != nil) β=\(b != nil) eps=\(eps)")
                    var y = x
                    withOptional(g) { gp in withOptional(b) { bp in
                        y.withUnsafeMutableBufferPointer { p in
                            zt_layernorm(p.baseAddress, p.baseAddress, gp, bp, Int64(rows), Int64(dim), eps)
                        }
                    } }
                    assertClose(y, want, abs: tol, rel: 1e-6, "layernorm in place \(rows)x\(dim)")
                }
            }
        }
    }

    func testRMSNorm() {
        var rng = Rng(6)
        for (rows, dim) in rowCounts.flatMap({ r in dims.map { (r, $0) } }) + [(200, 129)] {
            var x = rng.array(rows * dim, -2, 2)
            if rows > 2 { for j in 0..<dim { x[(rows - 1) * dim + j] *= 1e-3 } }  // mean(x²) ≪ eps row
            let gamma = rng.array(dim, 0.5, 2)
            for g in [gamma, nil] as [[Float]?] {
                for eps: Float in [1e-6, 0.1] {
                    var want = [Double](repeating: 0, count: rows * dim)
                    for r in 0..<rows {
                        let row = x[r * dim..<(r + 1) * dim].map(Double.init)
                        let ms = row.reduce(0) { $0 + $1 * $1 } / Double(dim)
                        for j in 0..<dim { want[r * dim + j] = row[j] / (ms + Double(eps)).squareRoot() * Double(g?[j] ?? 1) }
                    }
                    // Sum of squares (f32, ≤ 17 chained adds per lane), sqrt, divide and two
                    // multiplies: a few ulp relative; abs floor for outputs near 0.
                    var out = [Float](repeating: .nan, count: rows * dim)
                    withOptional(g) { gp in zt_rmsnorm(&out, x, gp, Int64(rows), Int64(dim), eps) }
                    assertClose(out, want, abs: 1e-7, rel: 4e-6, "rmsnorm \(rows)x\(dim) γ=\(g != nil) eps=\(eps)")
                    var y = x
                    withOptional(g) { gp in
                        y.withUnsafeMutableBufferPointer { p in
                            zt_rmsnorm(p.baseAddress, p.baseAddress, gp, Int64(rows), Int64(dim), eps)
                        }
                    }
                    assertClose(y, want, abs: 1e-7, rel: 4e-6, "rmsnorm in place \(rows)x\(dim)")
                }
            }
        }
    }

    // MARK: Embedding

    func testEmbeddingAllDtypesAndBadIds() {
        var rng = Rng(7)
        let vocab = 11
        for dim in [1, 7, 33] {
            let f32 = rng.array(vocab * dim, -4, 4)
            let f16 = f32.map { Float16($0).bitPattern }
            let bf16 = f32.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
            var ids: [Int32] = [3, -1, 0, 10, 11, Int32.max, Int32.min, 5, 5]
            ids += (0..<600).map { _ in Int32(rng.next() % UInt64(vocab + 2)) - 1 }  // threaded path, some bad
            let bad = ids.filter { $0 < 0 || $0 >= vocab }.count
            let n = ids.count
            let widened: [(String, zt_dtype, [Float])] = [
                ("f32", zt_dtype(ZT_F32), f32),
                ("f16", zt_dtype(ZT_F16), f16.map { Float(Float16(bitPattern: $0)) }),
                ("bf16", zt_dtype(ZT_BF16), bf16.map { Float(bitPattern: UInt32($0) << 16) }),
            ]
            // Widening f16/bf16 → f32 is exact, so every row must match bit for bit.
            for (name, dtype, rowsF32) in widened {
                var out = [Float](repeating: .nan, count: n * dim)  // NaN: bad rows must be written
                let got: Int64
                switch name {
                case "f32": got = zt_embedding(&out, f32, dtype, Int64(vocab), Int64(dim), ids, Int64(n))
                case "f16": got = zt_embedding(&out, f16, dtype, Int64(vocab), Int64(dim), ids, Int64(n))
                default: got = zt_embedding(&out, bf16, dtype, Int64(vocab), Int64(dim), ids, Int64(n))
                }
                XCTAssertEqual(got, Int64(bad), "\(name) bad-id count")
                var want = [Float](repeating: 0, count: n * dim)
                for (t, id) in ids.enumerated() where id >= 0 && id < vocab {
                    for j in 0..<dim { want[t * dim + j] = rowsF32[Int(id) * dim + j] }
                }
                assertBitwise(out, want, "embedding \(name) dim=\(dim)")
            }
        }
        // All valid: returns 0.
        var out = [Float](repeating: 0, count: 2)
        XCTAssertEqual(zt_embedding(&out, [Float(1), 2, 3, 4], zt_dtype(ZT_F32), 2, 2, [1], 1), 0)
        XCTAssertEqual(out, [3, 4])
    }

    // MARK: RoPE

    func testRoPE() {
        var rng = Rng(8)
        // (tokens, heads, head_dim, rot_dim); rot_dim < head_dim leaves the tail untouched.
        let cases = [(1, 1, 2, 2), (5, 3, 8, 8), (7, 2, 10, 4), (3, 4, 64, 32), (200, 4, 64, 64), (2, 1, 520, 520)]
        for (n, heads, hd, rot) in cases {
            let half = rot / 2
            let invFreq = (0..<half).map { Float(1.0 / pow(10000.0, Double(2 * $0) / Double(rot))) }
            let pos = (0..<n).map { t -> Int32 in [0, 1, 7, 4095, 131_071][t % 5] + Int32(t / 5) }
            let x0 = rng.array(n * heads * hd)
            var x = x0
            zt_rope(&x, pos, Int64(n), Int64(heads), Int64(hd), Int64(rot), invFreq, 1)
            var want = x0.map(Double.init)
            for t in 0..<n {
                for h in 0..<heads {
                    let base = (t * heads + h) * hd
                    for i in 0..<half {
                        // The angle is the f32 product (as transformers rounds it); cos/sin in Double.
                        let ang = Double(Float(pos[t]) * invFreq[i])
                        let x1 = Double(x0[base + i]), x2 = Double(x0[base + i + half])
                        want[base + i] = x1 * cos(ang) - x2 * sin(ang)
                        want[base + i + half] = x2 * cos(ang) + x1 * sin(ang)
                    }
                }
            }
            // cosf/sinf ≤ ~1 ulp plus two products and a sum of |x| ≤ 1 terms: a few ulp(1).
            assertClose(x, want, abs: 1e-6, "rope n=\(n) heads=\(heads) hd=\(hd) rot=\(rot)")
            for t in 0..<n {
                for h in 0..<heads {
                    let base = (t * heads + h) * hd
                    assertBitwise(Array(x[base + rot..<base + hd]), Array(x0[base + rot..<base + hd]), "rope tail")
                }
            }
        }
    }

    /// The attention factor (LongRoPE, YaRN) multiplies cos and sin: rotated dims become
    /// x·cos·f − y·sin·f, the pass-through dims stay as they were.
    func testRoPEAttentionFactor() {
        var rng = Rng(9)
        let (n, heads, hd, rot) = (37, 3, 96, 64)
        let half = rot / 2
        let invFreq = (0..<half).map { Float(1.0 / pow(10000.0, Double(2 * $0) / Double(rot))) }
        let pos = (0..<n).map { Int32($0 * 113 % 4096) }
        let x0 = rng.array(n * heads * hd)
        for f: Float in [1.1902, 0.75] {
            var x = x0
            zt_rope(&x, pos, Int64(n), Int64(heads), Int64(hd), Int64(rot), invFreq, f)
            var want = x0.map(Double.init)
            for t in 0..<n {
                for h in 0..<heads {
                    let base = (t * heads + h) * hd
                    for i in 0..<half {
                        let ang = Double(Float(pos[t]) * invFreq[i])
                        let x1 = Double(x0[base + i]), x2 = Double(x0[base + i + half])
                        want[base + i] = (x1 * cos(ang) - x2 * sin(ang)) * Double(f)
                        want[base + i + half] = (x2 * cos(ang) + x1 * sin(ang)) * Double(f)
                    }
                    assertBitwise(Array(x[base + rot..<base + hd]), Array(x0[base + rot..<base + hd]), "rope tail")
                }
            }
            // As testRoPE, each of the two terms carries one more rounding (cos·f, sin·f) and the
            // result is f times larger: a few ulp(f).
            assertClose(x, want, abs: 1e-6 * Double(f), "rope factor \(f)")
        }
        // A power of two scales exactly (every product and the sum just move the exponent), so
        // factor 2 is bit for bit twice factor 1: the factor multiplies each table entry once.
        var one = x0, two = x0
        zt_rope(&one, pos, Int64(n), Int64(heads), Int64(hd), Int64(rot), invFreq, 1)
        zt_rope(&two, pos, Int64(n), Int64(heads), Int64(hd), Int64(rot), invFreq, 2)
        for t in 0..<n {
            for h in 0..<heads {
                let base = (t * heads + h) * hd
                assertBitwise(Array(two[base..<base + rot]), Array(one[base..<base + rot]).map { 2 * $0 }, "factor 2")
            }
        }
    }

    // MARK: Attention

    /// Dense reference in Double: k, v (B, cap, Hkv, D) and mask (B, cap), cap defaulting to S;
    /// window > 0 keeps keys i − window < s ≤ i of the query at key index i = S − T + t; softcap > 0
    /// maps each score s to softcap·tanh(s / softcap) (transformers' Gemma 2).
    private func refAttention(q: [Float], k: [Float], v: [Float], mask: [UInt8]?,
                              B: Int, T: Int, S: Int, cap: Int? = nil, Hq: Int, Hkv: Int, D: Int, scale: Float,
                              window: Int = 0, softcap: Float = 0) -> [Double] {
        var out = [Double](repeating: 0, count: B * T * Hq * D)
        let group = Hq / Hkv, C = cap ?? S
        for b in 0..<B {
            for t in 0..<T {
                for h in 0..<Hq {
                    let kh = h / group
                    let qo = ((b * T + t) * Hq + h) * D
                    var keys: [Int] = []
                    var scores: [Double] = []
                    let i = S - T + t
                    for s in 0...i where mask?[b * C + s] ?? 1 != 0 && (window == 0 || s > i - window) {
                        let ko = ((b * C + s) * Hkv + kh) * D
                        var dot = 0.0
                        for d in 0..<D { dot += Double(q[qo + d]) * Double(k[ko + d]) }
                        keys.append(s)
                        let sc = Double(scale) * dot  // capped before the mask (masked keys never enter)
                        scores.append(softcap > 0 ? Double(softcap) * tanh(sc / Double(softcap)) : sc)
                    }
                    guard let m = scores.max() else { continue }  // no allowed key: zeros
                    let w = scores.map { exp($0 - m) }
                    let l = w.reduce(0, +)
                    for (n, s) in keys.enumerated() {
                        let vo = ((b * C + s) * Hkv + kh) * D
                        for d in 0..<D { out[qo + d] += w[n] / l * Double(v[vo + d]) }
                    }
                }
            }
        }
        return out
    }

    private func checkAttention(B: Int, T: Int, S: Int, Hq: Int, Hkv: Int, D: Int, qRange: Float = 1,
                                mask: [UInt8]?, seed: UInt64, tol: Double, _ what: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        var rng = Rng(seed)
        let q = rng.array(B * T * Hq * D, -qRange, qRange)
        let k = rng.array(B * S * Hkv * D), v = rng.array(B * S * Hkv * D)
        let scale = 1 / Float(D).squareRoot()
        var out = [Float](repeating: .nan, count: B * T * Hq * D)  // NaN: every row must be written
        withOptional(mask) { mp in
            zt_attention(&out, q, k, v, mp, Int64(B), Int64(T), Int64(S), Int64(S), Int64(Hq), Int64(Hkv), Int64(D), scale, 0, 0)
        }
        let want = refAttention(q: q, k: k, v: v, mask: mask, B: B, T: T, S: S, Hq: Hq, Hkv: Hkv, D: D, scale: scale)
        assertClose(out, want, abs: tol, what, file: file, line: line)
    }

    func testAttention() {
        // Outputs are convex combinations of v ∈ [−1, 1]; f32 scores carry ~D·ulp error and the
        // online rescaling a few ulp per tile, so 1e-5 absolute (100× ulp(1)) is ample yet far below
        // the O(0.1) change from a wrong key, head or mask.
        checkAttention(B: 2, T: 5, S: 5, Hq: 2, Hkv: 2, D: 7, mask: nil, seed: 10, tol: 1e-5, "Hq=Hkv, no cache")
        checkAttention(B: 1, T: 1, S: 1, Hq: 1, Hkv: 1, D: 1, mask: nil, seed: 11, tol: 1e-6, "single key")
        // GQA Hq=6, Hkv=2 with a KV cache (S − T = 6) and left padding in batch 0.
        let S = 9
        var mask = [UInt8](repeating: 1, count: 2 * S)
        mask[0] = 0; mask[1] = 0
        checkAttention(B: 2, T: 3, S: S, Hq: 6, Hkv: 2, D: 33, mask: mask, seed: 12, tol: 1e-5, "GQA cache left pad")
        checkAttention(B: 2, T: 3, S: S, Hq: 6, Hkv: 2, D: 129, mask: nil, seed: 13, tol: 1e-5, "GQA D=129")
        // Prefill with left padding: queries 0…2 of batch 0 see only padding and must output 0;
        // batch 1 is fully masked.
        var pad = [UInt8](repeating: 1, count: 2 * 6)
        for s in 0..<3 { pad[s] = 0 }
        for s in 6..<12 { pad[s] = 0 }
        checkAttention(B: 2, T: 6, S: 6, Hq: 6, Hkv: 3, D: 16, mask: pad, seed: 14, tol: 1e-5, "fully masked queries")
        // S spanning several key tiles, with a masked run across a tile boundary and a whole
        // masked tile; large q makes scores span ~±30 so the running max really changes.
        let S2 = 200
        var m2 = [UInt8](repeating: 1, count: S2)
        for s in 50..<140 { m2[s] = 0 }
        // Scores up to ~30 carry ~30·D·ulp ≈ 5e-5 relative weight error in the worst case.
        checkAttention(B: 1, T: 3, S: S2, Hq: 4, Hkv: 1, D: 16, qRange: 8, mask: m2, seed: 15, tol: 5e-5, "multi-tile")
        checkAttention(B: 1, T: 70, S: 70, Hq: 2, Hkv: 2, D: 8, mask: nil, seed: 16, tol: 1e-5, "prefill > tile")
        // The kernel's paths: head sizes 64 and 128 (compiled as constants), over 256 (no transposed
        // tile); blocks of 32 queries, the last one partial, behind a KV-cache offset and padding.
        var m3 = [UInt8](repeating: 1, count: 2 * 100)
        for s in 0..<10 { m3[s] = 0 }
        checkAttention(B: 2, T: 40, S: 100, Hq: 6, Hkv: 2, D: 64, qRange: 4, mask: m3, seed: 17, tol: 2e-5, "D=64 query blocks, cache, pad")
        checkAttention(B: 1, T: 33, S: 33, Hq: 4, Hkv: 2, D: 128, mask: nil, seed: 18, tol: 1e-5, "D=128, 32 + 1 queries")
        checkAttention(B: 1, T: 5, S: 70, Hq: 2, Hkv: 1, D: 300, mask: nil, seed: 19, tol: 1e-5, "D=300")

        // Direct check of the zero rule on a hand case: one query, its only key masked.
        var out: [Float] = [.nan, .nan]
        zt_attention(&out, [1, 1], [1, 1], [1, 1], [0], 1, 1, 1, 1, 1, 1, 2, 1, 0, 0)
        XCTAssertEqual(out, [0, 0])
    }

    /// Runs zt_attention on random q, k, v (k and v (B, cap, Hkv, D); positions ≥ S hold NaN, so
    /// reading past the used keys shows) and returns the output with the Double reference.
    private func windowRun(B: Int, T: Int, S: Int, cap: Int, Hq: Int, Hkv: Int, D: Int, mask: [UInt8]?,
                           window: Int, seed: UInt64, qRange: Float = 1,
                           softcap: Float = 0) -> (got: [Float], want: [Double]) {
        var rng = Rng(seed)
        let q = rng.array(B * T * Hq * D, -qRange, qRange)
        var k = rng.array(B * cap * Hkv * D), v = rng.array(B * cap * Hkv * D)
        for b in 0..<B { for e in (b * cap + S) * Hkv * D..<(b + 1) * cap * Hkv * D { k[e] = .nan; v[e] = .nan } }
        let scale = 1 / Float(D).squareRoot()
        var out = [Float](repeating: .nan, count: q.count)  // NaN: every row must be written
        withOptional(mask) { mp in
            zt_attention(&out, q, k, v, mp, Int64(B), Int64(T), Int64(S), Int64(cap), Int64(Hq), Int64(Hkv), Int64(D),
                         scale, Int64(window), softcap)
        }
        return (out, refAttention(q: q, k: k, v: v, mask: mask, B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D,
                                  scale: scale, window: window, softcap: softcap))
    }

    /// Bound on |kernel − exact| (derived, not fitted) for q, k, v in [−1, 1) and scale 1/√D; u = 2⁻²⁴.
    /// A score s = scale·Σ q_d k_d over D f32 products has |Δs| ≤ (D + 1)·u·√D (|Σ| ≤ D); a weight
    /// exp(s − m) then has relative error ε ≤ 2|Δs| (s and the max m) + u·2√D (the subtraction)
    /// + 2u (zt_exp); relative weight errors ε move a mean of values within 2 of each other by ≤ 2ε;
    /// Σ p·v and Σ p over ≤ keys terms, the per-tile rescales and the final division add
    /// ≤ (keys + keys/64 + 3)·u. A wrong key, window edge or head moves outputs by O(1/window) ≫ this.
    private func windowTolerance(D: Int, keys: Int) -> Double {
        let u = 0x1p-24, r = Double(D).squareRoot()
        let eps = 2 * Double(D + 1) * u * r + 2 * u * r + 2 * u
        return 2 * eps + Double(keys + keys / 64 + 3) * u
    }

    func testAttentionWindowAgainstDenseReference() {
        // (B, T, S, cap, Hq, Hkv, D, windows): no cache (S = T, prefill over several key tiles and
        // query blocks), a cache (S > T, cap > S, NaN past S), GQA Hq = 2·Hkv throughout, a T = 1
        // decode step, head sizes on each kernel path (64 and 128 constant, 300 without the
        // transposed tile), windows of 1 (only itself), 3, across a 64-key tile edge, and near S.
        let cases: [(Int, Int, Int, Int, Int, Int, Int, [Int])] = [
            (2, 70, 70, 70, 4, 2, 16, [1, 3, 17, 64, 65]),
            (2, 5, 100, 128, 4, 2, 16, [1, 3, 37, 96, 99]),
            (2, 1, 300, 320, 4, 2, 16, [1, 3, 100, 299]),
            (1, 40, 100, 100, 4, 2, 64, [1, 3, 20]),
            (1, 33, 90, 96, 2, 1, 128, [3, 50]),
            (1, 5, 70, 70, 2, 1, 300, [1, 5]),
        ]
        for (B, T, S, cap, Hq, Hkv, D, windows) in cases {
            for (n, w) in windows.enumerated() {
                let r = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: nil, window: w,
                                  seed: UInt64(40 + n))
                assertClose(r.got, r.want, abs: windowTolerance(D: D, keys: min(w, S)),
                            "B \(B) T \(T) S \(S) cap \(cap) Hq \(Hq) Hkv \(Hkv) D \(D) window \(w)")
            }
        }
        // Left padding through key_mask, with a cache: batch 0 has 12 padded keys, so with window 3
        // its first queries see only padding (output 0) and the next ones part of their window;
        // batch 1 has a masked run in the middle of its windows. Prefill (T = S) and decode (T = 1).
        for (T, S, cap) in [(40, 40, 48), (1, 90, 100), (6, 30, 30)] {
            var mask = [UInt8](repeating: 1, count: 2 * cap)
            for s in 0..<12 { mask[s] = 0 }
            for s in (S - 10)..<(S - 4) { mask[cap + s] = 0 }
            for (n, w) in [1, 3, 8, 25].enumerated() {
                let r = windowRun(B: 2, T: T, S: S, cap: cap, Hq: 4, Hkv: 2, D: 16, mask: mask, window: w,
                                  seed: UInt64(50 + n))
                assertClose(r.got, r.want, abs: windowTolerance(D: 16, keys: min(w, S)),
                            "left padding T \(T) S \(S) window \(w)")
            }
        }
    }

    /// window ≥ S allows every causal key: exactly the unwindowed kernel, bit for bit.
    func testAttentionWindowCoveringAllKeysIsNoWindow() {
        let (B, T, S, cap, Hq, Hkv, D) = (2, 40, 100, 104, 4, 2, 64)
        var mask = [UInt8](repeating: 1, count: B * cap)
        for s in 0..<7 { mask[s] = 0 }
        for m in [nil, mask] {
            let none = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: m, window: 0, seed: 60).got
            for w in [S, S + 1, Int(Int64.max)] {
                let got = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: m, window: w, seed: 60).got
                assertBitwise(got, none, "window \(w) vs none, mask \(m != nil)")
            }
        }
    }

    /// Bound for soft-capped scores, derived as windowTolerance's with q in [−ρ, ρ): a score's f32
    /// error |Δs| ≤ (D + 2)·u·ρ·√D (D products and sums of terms |q_d·k_d| ≤ ρ, then the scale's
    /// product). Capping passes it on damped (d/ds cap·tanh(s / cap) = sech² ≤ 1) and adds the
    /// division, zt_tanh and the product, ≤ 8u·m (as in testSoftcap) with m = min(cap, ρ√D) ≥ |capped s|.
    /// A weight exp(s − max) then errs by ε ≤ 2(|Δs| + 8u·m) + 2u·m (the subtraction) + 2u (zt_exp);
    /// a mean of values within 2 of each other moves by ≤ 2ε; the sums, per-tile rescales and the
    /// final division add (keys + keys/64 + 3)·u.
    private func softcapTolerance(D: Int, keys: Int, qRange: Double, softcap: Double) -> Double {
        let u = 0x1p-24, r = Double(D).squareRoot(), m = min(softcap, qRange * r)
        let eps = 2 * (Double(D + 2) * u * qRange * r + 8 * u * m) + 2 * u * m + 2 * u
        return 2 * eps + Double(keys + keys / 64 + 3) * u
    }

    func testAttentionSoftcapAgainstDenseReference() {
        // q in [−2, 2) spreads the scores (σ ≈ 2/3, up to ±2√D) across cap 1, where tanh bends; cap 50
        // (Gemma 2's) barely moves them. The window test's paths: no cache over several key tiles and
        // query blocks, a cache with NaN past S, GQA, a T = 1 decode step, D 64 and 128 (constant
        // sizes) and 300 (scored in two dim chunks: the cap follows the scale after the last),
        // no window, window 3 and windows across a 64-key tile edge.
        let cases: [(Int, Int, Int, Int, Int, Int, Int, [Int])] = [
            (2, 70, 70, 70, 4, 2, 16, [0, 3, 65]),
            (2, 5, 100, 128, 4, 2, 16, [0, 3, 37]),
            (2, 1, 300, 320, 4, 2, 16, [0, 100]),
            (1, 40, 100, 100, 4, 2, 64, [0, 20]),
            (1, 33, 90, 96, 2, 1, 128, [0, 50]),
            (1, 5, 70, 70, 2, 1, 300, [0, 5]),
        ]
        func run(_ B: Int, _ T: Int, _ S: Int, _ cap: Int, _ Hq: Int, _ Hkv: Int, _ D: Int, _ mask: [UInt8]?, _ w: Int,
                 seed: UInt64, _ what: String) {
            let plain = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: mask, window: w, seed: seed,
                                  qRange: 2).want
            for softcap: Float in [1, 50] {
                let r = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: mask, window: w, seed: seed,
                                  qRange: 2, softcap: softcap)
                let tol = softcapTolerance(D: D, keys: w == 0 ? S : min(w, S), qRange: 2, softcap: Double(softcap))
                assertClose(r.got, r.want, abs: tol, "\(what) softcap \(softcap)")
                if softcap == 1 {  // the cap shows: the uncapped outputs lie far outside the bound
                    let moved = zip(r.want, plain).map { Swift.abs($0 - $1) }.max() ?? 0
                    XCTAssertGreaterThan(moved, 20 * tol, "\(what): cap 1 changes the outputs")
                }
            }
        }
        for (B, T, S, cap, Hq, Hkv, D, windows) in cases {
            for (n, w) in windows.enumerated() {
                run(B, T, S, cap, Hq, Hkv, D, nil, w, seed: UInt64(70 + n),
                    "B \(B) T \(T) S \(S) cap \(cap) Hq \(Hq) Hkv \(Hkv) D \(D) window \(w)")
            }
        }
        // Masks (capping comes before them: a masked key must weigh 0, not exp(−cap − max)): batch 0
        // left-padded by 12 keys, batch 1 with a masked run inside the windows; prefill and decode.
        for (T, S, cap) in [(40, 40, 48), (1, 90, 100)] {
            var mask = [UInt8](repeating: 1, count: 2 * cap)
            for s in 0..<12 { mask[s] = 0 }
            for s in (S - 10)..<(S - 4) { mask[cap + s] = 0 }
            for (n, w) in [0, 3, 25].enumerated() {
                run(2, T, S, cap, 4, 2, 16, mask, w, seed: UInt64(80 + n), "mask T \(T) S \(S) window \(w)")
            }
        }
    }

    /// softcap 0 skips the step; a negative, NaN or infinite cap reads as 0 on the CPU: all bit for
    /// bit the same rows, with and without a mask and a window.
    func testAttentionSoftcapZeroIsNone() {
        let (B, T, S, cap, Hq, Hkv, D) = (2, 40, 100, 104, 4, 2, 64)
        var mask = [UInt8](repeating: 1, count: B * cap)
        for s in 0..<7 { mask[s] = 0 }
        let runs: [([UInt8]?, Int)] = [(nil, 0), (mask, 0), (mask, 30)]
        for (m, w) in runs {
            let none = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: m, window: w, seed: 90).got
            for c: Float in [-1, .nan, .infinity] {
                let got = windowRun(B: B, T: T, S: S, cap: cap, Hq: Hq, Hkv: Hkv, D: D, mask: m, window: w, seed: 90,
                                    softcap: c).got
                assertBitwise(got, none, "softcap \(c) vs 0, mask \(m != nil), window \(w)")
            }
        }
    }

    /// Left padding does not change a row's rounding: key tiles start at the first unmasked key, so a
    /// sequence behind p padded keys gives bit for bit the rows of the same sequence unpadded, with
    /// and without a window or a soft cap (p = 77 puts the tiles of the padded run off the 64-key grid).
    func testAttentionRowsDoNotDependOnLeftPadding() {
        let (n, Hq, Hkv, D) = (90, 4, 2, 32)
        var rng = Rng(61)
        let q = rng.array(n * Hq * D), k = rng.array(n * Hkv * D), v = rng.array(n * Hkv * D)
        for p in [5, 77] {
            let S = n + p
            let pad = [Float](repeating: 0.5, count: p * Hkv * D), padQ = [Float](repeating: 0.5, count: p * Hq * D)
            let mask = [UInt8](repeating: 0, count: p) + [UInt8](repeating: 1, count: n)
            for (w, softcap) in [(0, Float(0)), (3, 0), (70, 0), (0, 0.5), (70, 0.5)] {
                let scale: Float = 0.2
                var plain = [Float](repeating: .nan, count: n * Hq * D), padded = [Float](repeating: .nan, count: S * Hq * D)
                zt_attention(&plain, q, k, v, nil, 1, Int64(n), Int64(n), Int64(n), Int64(Hq), Int64(Hkv), Int64(D), scale,
                             Int64(w), softcap)
                zt_attention(&padded, padQ + q, pad + k, pad + v, mask, 1, Int64(S), Int64(S), Int64(S), Int64(Hq),
                             Int64(Hkv), Int64(D), scale, Int64(w), softcap)
                assertBitwise(Array(padded[(p * Hq * D)...]), plain, "padding \(p), window \(w), softcap \(softcap)")
                XCTAssertEqual(Array(padded[..<(p * Hq * D)]), [Float](repeating: 0, count: p * Hq * D),
                               "padded queries see no key")
            }
        }
    }

    // MARK: GEMM

    /// C(M,N) = α·op(A)·op(B) + β·C in Double from row-major A, B with leading dimensions.
    private func refGemm(_ ta: Bool, _ tb: Bool, _ M: Int, _ N: Int, _ K: Int, _ alpha: Float,
                         _ A: [Float], _ lda: Int, _ B: [Float], _ ldb: Int, _ beta: Float,
                         _ C: [Float], _ ldc: Int) -> [Double] {
        var out = C.map(Double.init)
        for i in 0..<M {
            for j in 0..<N {
                var s = 0.0
                for p in 0..<K {
                    let a = ta ? A[p * lda + i] : A[i * lda + p]
                    let b = tb ? B[j * ldb + p] : B[p * ldb + j]
                    s += Double(a) * Double(b)
                }
                out[i * ldc + j] = Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(C[i * ldc + j]))
            }
        }
        return out
    }

    func testSgemmAllTransposesPaddedLeadingDims() {
        var rng = Rng(20)
        let sentinel: Float = 12345
        for (M, N, K) in [(1, 1, 1), (3, 7, 5), (17, 33, 9), (33, 1, 129), (7, 129, 33)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    // Non-tight leading dimensions: padding columns in A, B and C.
                    let (aRows, aCols) = ta ? (K, M) : (M, K)
                    let (bRows, bCols) = tb ? (N, K) : (K, N)
                    let lda = aCols + 3, ldb = bCols + 5, ldc = N + 2
                    let A = rng.array(aRows * lda), B = rng.array(bRows * ldb)
                    var C0 = rng.array(M * ldc)
                    for i in 0..<M { for j in N..<ldc { C0[i * ldc + j] = sentinel } }
                    for (alpha, beta) in [(Float(0.75), Float(-0.5)), (1, 0)] {
                        var C = C0
                        if beta == 0 { for i in 0..<M { for j in 0..<N { C[i * ldc + j] = .nan } } }  // β = 0 must not read C
                        let want = refGemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
                        zt_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int64(M), Int64(N), Int64(K), alpha,
                                 A, Int64(lda), B, Int64(ldb), beta, &C, Int64(ldc))
                        // f32 dot of K products of magnitude ≤ 1: rounding grows at most ~K·ulp(1).
                        assertClose(C, want, abs: 1e-6 * Double(K + 1), "sgemm ta=\(ta) tb=\(tb) \(M)x\(N)x\(K) β=\(beta)")
                        for i in 0..<M { for j in N..<ldc { XCTAssertEqual(C[i * ldc + j], sentinel, "ldc padding written") } }
                    }
                }
            }
        }
    }

    /// The CPU's mixed-precision GEMM (the reference of the device's tensor-core path): A rounded
    /// to the weights' type — f16 by Swift's own Float16 conversion, bf16 by round-to-nearest-even
    /// on the top 16 bits — B widened, the product in Double; f32 accumulation stays within K·ulp.
    func testGemmMixedRoundsActivationsToTheWeightType() {
        var rng = Rng(21)
        func bf16Round(_ x: Float) -> Float {
            let b = x.bitPattern, lsb = (b >> 16) & 1
            return Float(bitPattern: (b &+ 0x7FFF &+ lsb) & 0xFFFF_0000)
        }
        for (dt, name) in [(ZT_BF16, "bf16"), (ZT_F16, "f16")] {
            for (M, N, K, tb) in [(3, 7, 5, true), (17, 33, 65, true), (17, 33, 65, false), (64, 96, 200, true)] {
                let lda = K + 3, ldb = (tb ? K : N) + 1, ldc = N + 2
                let A = rng.array(M * lda, -4, 4)
                let Bf = rng.array((tb ? N : K) * ldb, -0.1, 0.1)
                let B: [UInt16] = Bf.map { dt == ZT_F16 ? Float16($0).bitPattern : UInt16(bf16Round($0).bitPattern >> 16) }
                let Bw: [Float] = B.map { dt == ZT_F16 ? Float(Float16(bitPattern: $0)) : Float(bitPattern: UInt32($0) << 16) }
                let Ar: [Float] = A.map { dt == ZT_F16 ? Float(Float16($0)) : bf16Round($0) }
                var C = rng.array(M * ldc)
                let want = refGemm(false, tb, M, N, K, 0.5, Ar, lda, Bw, ldb, 0.25, C, ldc)
                var ws = [UInt8](repeating: 0, count: zt_gemm_mixed_workspace(Int64(M), Int64(N), Int64(K)))
                let rc = zt_gemm_mixed(tb ? 1 : 0, Int64(M), Int64(N), Int64(K), 0.5, A, Int64(lda), B, zt_dtype(dt), Int64(ldb),
                                       0.25, &C, Int64(ldc), &ws)
                XCTAssertEqual(rc, 0)
                assertClose(C, want, abs: 4e-7 * Double(K + 1), "\(name) \(M)x\(N)x\(K) tb=\(tb)")
                // Unrounded activations would differ by far more than that: the rounding is real.
                let unrounded = refGemm(false, tb, M, N, K, 0.5, A, lda, Bw, ldb, 0.25, C, ldc)
                XCTAssertGreaterThan(zip(want, unrounded).map { Swift.abs($0 - $1) }.max()!, 1e-5, "\(name): rounding visible")
            }
        }
        var ws = [UInt8](repeating: 0, count: 64)
        var c: [Float] = [0]
        XCTAssertEqual(zt_gemm_mixed(1, 1, 1, 1, 1, [1], 1, [Float(1)], zt_dtype(ZT_F32), 1, 0, &c, 1, &ws), 1, "f32 weights refused")
    }

    /// gemm_half takes the activation already in the weights' dtype (rounded once, by Swift's own
    /// Float16 / round-to-nearest-even bf16 here): gemm_mixed's bits on the f32 activation for a
    /// packed A (the same widening and SGEMM), and the double reference within gemm_mixed's K·ulp
    /// bound at a padded lda whose padding (NaN) is never read.
    func testGemmHalfIsGemmMixedOfTheRoundedActivation() {
        var rng = Rng(23)
        func bf16Bits(_ x: Float) -> UInt16 {
            let b = x.bitPattern, lsb = (b >> 16) & 1
            return UInt16((b &+ 0x7FFF &+ lsb) >> 16)
        }
        for (dt, name) in [(ZT_BF16, "bf16"), (ZT_F16, "f16")] {
            let round: (Float) -> UInt16 = { dt == ZT_F16 ? Float16($0).bitPattern : bf16Bits($0) }
            let widen: (UInt16) -> Float = { dt == ZT_F16 ? Float(Float16(bitPattern: $0)) : Float(bitPattern: UInt32($0) << 16) }
            for (M, N, K, tb) in [(3, 7, 5, true), (17, 33, 65, false), (64, 96, 200, true)] {
                let ldb = (tb ? K : N) + 1, ldc = N + 2, ldp = K + 3
                let A = rng.array(M * K, -4, 4), A16 = A.map(round)
                let B = rng.array((tb ? N : K) * ldb, -0.1, 0.1).map(round)
                let C0 = rng.array(M * ldc)
                var mixed = C0, half = C0, padded = C0
                var ws = [UInt8](repeating: 0, count: zt_gemm_mixed_workspace(Int64(M), Int64(N), Int64(K)))
                XCTAssertEqual(zt_gemm_mixed(tb ? 1 : 0, Int64(M), Int64(N), Int64(K), 0.5, A, Int64(K), B, zt_dtype(dt), Int64(ldb),
                                             0.25, &mixed, Int64(ldc), &ws), 0)
                XCTAssertEqual(zt_gemm_half(tb ? 1 : 0, Int64(M), Int64(N), Int64(K), 0.5, A16, Int64(K), B, zt_dtype(dt), Int64(ldb),
                                            0.25, &half, Int64(ldc), &ws), 0)
                assertBitwise(half, mixed, "\(name) \(M)x\(N)x\(K) tb=\(tb): gemm_half == gemm_mixed")
                var Ap = [UInt16](repeating: dt == ZT_F16 ? 0x7E00 : 0x7FC0, count: M * ldp)
                for i in 0..<M { for k in 0..<K { Ap[i * ldp + k] = A16[i * K + k] } }
                XCTAssertEqual(zt_gemm_half(tb ? 1 : 0, Int64(M), Int64(N), Int64(K), 0.5, Ap, Int64(ldp), B, zt_dtype(dt), Int64(ldb),
                                            0.25, &padded, Int64(ldc), &ws), 0)
                let want = refGemm(false, tb, M, N, K, 0.5, A16.map(widen), K, B.map(widen), ldb, 0.25, C0, ldc)
                assertClose(padded, want, abs: 4e-7 * Double(K + 1), "\(name) \(M)x\(N)x\(K) tb=\(tb), lda \(ldp)")
            }
        }
        var ws = [UInt8](repeating: 0, count: 64)
        var c: [Float] = [0]
        XCTAssertEqual(zt_gemm_half(1, 1, 1, 1, 1, [Float(1)], 1, [Float(1)], zt_dtype(ZT_F32), 1, 0, &c, 1, &ws), 1, "f32 refused")
    }

    func testSgemmStridedBatched() {
        var rng = Rng(21)
        let (M, N, K, batch) = (5, 4, 6, 3)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (aRows, aCols) = ta ? (K, M) : (M, K)
            let (bRows, bCols) = tb ? (N, K) : (K, N)
            let lda = aCols + 1, ldb = bCols + 2, ldc = N + 3
            // Strides larger than one matrix (gaps between batches); sb = 0 broadcasts B.
            let sa = aRows * lda + 7, sc = M * ldc + 4
            for sb in [bRows * ldb + 3, 0] {
                let A = rng.array(sa * batch), B = rng.array(max(sb * batch, bRows * ldb))
                var C = rng.array(sc * batch)
                let C0 = C
                zt_sgemm_strided_batched(ta ? 1 : 0, tb ? 1 : 0, Int64(M), Int64(N), Int64(K), 0.5,
                                         A, Int64(lda), Int64(sa), B, Int64(ldb), Int64(sb),
                                         2, &C, Int64(ldc), Int64(sc), Int64(batch))
                for i in 0..<batch {
                    let want = refGemm(ta, tb, M, N, K, 0.5, Array(A[(i * sa)...]), lda, Array(B[(i * sb)...]), ldb,
                                       2, Array(C0[(i * sc)..<(i * sc + M * ldc)]), ldc)
                    // K = 6 products ≤ 1, plus β·C with |β·C| ≤ 2: a few ulp(2).
                    var got = Array(C[(i * sc)..<(i * sc + M * ldc)])
                    var wantCut = want
                    for r in 0..<M { for j in N..<ldc { got[r * ldc + j] = 0; wantCut[r * ldc + j] = 0 } }
                    assertClose(got, wantCut, abs: 2e-6 * Double(K + 2), "batched ta=\(ta) tb=\(tb) sb=\(sb) batch \(i)")
                }
                // Gaps between the batches' C blocks are untouched.
                for i in 0..<batch {
                    for e in (i * sc + M * ldc)..<((i + 1) * sc) { XCTAssertEqual(C[e], C0[e], "C gap written") }
                }
            }
        }
    }

    func testBlasConfigAndThreads() {
        let config = String(cString: zt_blas_config())
        XCTAssertTrue(config.contains("OpenBLAS"), config)
        let saved = zt_blas_num_threads()
        XCTAssertGreaterThanOrEqual(saved, 1)
        zt_blas_set_num_threads(1)
        XCTAssertEqual(zt_blas_num_threads(), 1)
        zt_blas_set_num_threads(saved)
        XCTAssertEqual(zt_blas_num_threads(), saved)
    }

    // MARK: Threading

    /// Results must not depend on the pool size: each row/element is computed by one task.
    func testThreadCountInvariance() {
        var rng = Rng(30)
        let saved = zt_num_threads()
        defer { zt_set_num_threads(Int32(saved)) }
        let rows = 300, dim = 129
        let x = rng.array(rows * dim, -5, 5), gamma = rng.array(dim), beta = rng.array(dim)
        let (B, T, S, Hq, Hkv, D) = (2, 16, 40, 6, 2, 32)
        let q = rng.array(B * T * Hq * D), k = rng.array(B * S * Hkv * D), v = rng.array(B * S * Hkv * D)
        var mask = [UInt8](repeating: 1, count: B * S)
        mask[0] = 0
        func runAll() -> [[Float]] {
            var a = [Float](repeating: 0, count: rows * dim), b = a, c = a, d = a
            zt_softmax(&a, x, Int64(rows), Int64(dim))
            zt_layernorm(&b, x, gamma, beta, Int64(rows), Int64(dim), 1e-5)
            zt_gelu_tanh(&c, x, Int64(rows * dim))
            zt_rmsnorm(&d, x, gamma, Int64(rows), Int64(dim), 1e-6)
            var o = [Float](repeating: 0, count: B * T * Hq * D)
            zt_attention(&o, q, k, v, mask, Int64(B), Int64(T), Int64(S), Int64(S), Int64(Hq), Int64(Hkv), Int64(D), 0.2, 0, 0)
            var oc = o
            zt_attention(&oc, q, k, v, mask, Int64(B), Int64(T), Int64(S), Int64(S), Int64(Hq), Int64(Hkv), Int64(D), 0.2, 0, 0.5)
            return [a, b, c, d, o, oc]
        }
        zt_set_num_threads(1)
        let one = runAll()
        zt_set_num_threads(3)
        let three = runAll()
        for (i, (p, r)) in zip(one, three).enumerated() { assertBitwise(r, p, "op \(i): 3 threads vs 1") }
    }
}
