import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
@testable import ZOTuneTraining

/// ZO-Muon, ZO-Jaguar SignSGD and Jaguar-Muon on the quadratic oracle of ZO-FAMILY.md §2, where the
/// central difference is exact, so each trajectory has a closed form. The references below are
/// written naively in double (Newton–Schulz included) and take from the engine only the
/// definitions of z (the Philox stream) and of the probed blocks (the seeded permutation, itself
/// tested here against the statistics of a uniform draw).
final class MatrixOptimizerTests: XCTestCase {
    let backend = KernelBackend.cpu()
    let rows = 6, cols = 10, n = 5
    let wName = "model.layers.0.mlp.up_proj.weight", vName = "model.layers.0.input_layernorm.weight"

    /// f(θ) = Σ ½aᵢθᵢ² + bᵢθᵢ over W (flattened) then v.
    var a: [Double] { (0..<(rows * cols + n)).map { 0.5 + Double(($0 * 29) % 17) / 8 } }
    var b: [Double] { (0..<(rows * cols + n)).map { 0.2 * sin(Double($0) * 1.3) } }
    func f(_ t: [Double]) -> Double { t.indices.reduce(0) { $0 + 0.5 * a[$1] * t[$1] * t[$1] + b[$1] * t[$1] } }
    func grad(_ t: [Double]) -> [Double] { t.indices.map { a[$0] * t[$0] + b[$0] } }
    var theta0: [Double] { (0..<(rows * cols + n)).map { cos(Double($0) * 0.7) } }

    func makeSet() throws -> TrainableSet {
        let t0 = theta0.map(Float.init)
        let w = try backend.tensor(Array(t0[0..<(rows * cols)]), shape: [rows, cols], tag: .weights)
        let v = try backend.tensor(Array(t0[(rows * cols)...]), shape: [n], tag: .weights)
        return TrainableSet(entries: [.init(name: wName, tensor: w, tensorId: TrainableSet.tensorId(wName), decays: true),
                                      .init(name: vName, tensor: v, tensorId: TrainableSet.tensorId(vName), decays: false)], spec: "test")
    }

    func host(_ set: TrainableSet) -> [Double] { set.entries.flatMap { backend.toHost($0.tensor) }.map(Double.init) }

    func run(_ config: OptimizerConfig, steps: Int, lr: Float) throws -> (theta: [Double], records: [ZORecord], optimizer: any ZOOptimizer, set: TrainableSet) {
        let set = try makeSet()
        let opt = try config.make(set: set, backend: backend)
        var records: [ZORecord] = []
        for t in 0..<steps { records += try opt.step(StepContext(step: t, runSeed: 11, lr: lr, loss: { [self] in f(host(set)) })).records }
        return (host(set), records, opt, set)
    }

    func seed(_ t: Int) -> UInt64 { stepSeed(runSeed: 11, step: t, direction: 0) }

    /// z of step t over W then v.
    func z(_ t: Int) -> [Double] {
        (0..<(rows * cols)).map { Double(zt_normal_at(seed(t), TrainableSet.tensorId(wName), 0, UInt64($0))) }
            + (0..<n).map { Double(zt_normal_at(seed(t), TrainableSet.tensorId(vName), 0, UInt64($0))) }
    }

    /// The probed entries of step t with their signs (flat indices into θ = W ++ v).
    func block(_ t: Int, fraction: Double, signs: Bool) -> [(index: Int, sign: Double)] {
        var out: [(Int, Double)] = []
        for (name, r, c, base) in [(wName, rows, cols, 0), (vName, 1, n, rows * cols)] {
            let id = TrainableSet.tensorId(name)
            let sel = JaguarSelection(shape: r == 1 ? [c] : [r, c], fraction: fraction, signs: signs)
            var pr = zt_perm_make(UInt32(r), seed(t), id, ZT_STREAM_SELECT_ROWS)
            var pc = zt_perm_make(UInt32(c), seed(t), id, ZT_STREAM_SELECT_COLS)
            for i in 0..<sel.kRows {
                for j in 0..<sel.kCols {
                    let e = Int(zt_perm_at(&pr, UInt32(i))) * c + Int(zt_perm_at(&pc, UInt32(j)))
                    out.append((base + e, signs ? Double(zt_select_sign(seed(t), id, UInt64(e))) : 1))
                }
            }
        }
        return out
    }

    /// Newton–Schulz naively in double.
    func nsDouble(_ x: [Double], _ p: NewtonSchulz, steps: Int) -> [Double] {
        let (ca, cb, cc) = p.coefficients
        let tr = rows > cols, (r, m) = tr ? (cols, rows) : (rows, cols)
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot() + 1e-7
        var X = [Double](repeating: 0, count: r * m)
        for i in 0..<rows { for j in 0..<cols { X[tr ? j * m + i : i * m + j] = x[i * cols + j] / norm } }
        for _ in 0..<steps {
            var A = [Double](repeating: 0, count: r * r)
            for i in 0..<r { for j in 0..<r { for q in 0..<m { A[i * r + j] += X[i * m + q] * X[j * m + q] } } }
            var B = A.map { Double(cb) * $0 }
            for i in 0..<r { B[i * r + i] += Double(ca); for j in 0..<r { for q in 0..<r { B[i * r + j] += Double(cc) * A[i * r + q] * A[q * r + j] } } }
            var Y = [Double](repeating: 0, count: r * m)
            for i in 0..<r { for j in 0..<m { for q in 0..<r { Y[i * m + j] += B[i * r + q] * X[q * m + j] } } }
            X = Y
        }
        return (0..<(rows * cols)).map { tr ? X[($0 % cols) * m + $0 / cols] : X[$0] }
    }

    func assertClose(_ got: [Double], _ want: [Double], tol: Double, _ what: String) {
        for i in want.indices { XCTAssertEqual(got[i], want[i], accuracy: tol * (1 + abs(want[i])), "\(what)[\(i)]") }
    }

    func sign(_ x: Double) -> Double { x > 0 ? 1 : x < 0 ? -1 : 0 }

    // MARK: closed-form trajectories

    func testZOMuonBothPlacementsFollowTheirClosedForms() throws {
        let steps = 8, lr: Float = 0.02, mu = 0.9, ratio = 0.5, eps: Float = 1e-2
        for placement in MomentumPlacement.allCases {
            let cfg = ZOMuonOptions(eps: eps, momentum: Float(mu), nsSteps: 5, placement: placement, otherLRRatio: Float(ratio))
            let e = try run(.zoMuon(cfg), steps: steps, lr: lr)
            var t = theta0, buf = [Double](repeating: 0, count: t.count)
            let nw = rows * cols
            for s in 0..<steps {
                let zs = z(s), gr = grad(t)
                let g = zip(zs, gr).reduce(0) { $0 + $1.0 * $1.1 }
                XCTAssertEqual(Double(e.records[s].projectedGrad), g, accuracy: 1e-3 * (1 + abs(g)), "\(placement) g at \(s)")
                switch placement {
                case .afterNS:
                    let o = nsDouble(zs[0..<nw].map { g * $0 }, .quintic, steps: 5)
                    for i in 0..<nw { buf[i] = mu * buf[i] + o[i]; t[i] -= Double(lr) * buf[i] }
                case .beforeNS:
                    for i in 0..<nw { buf[i] = mu * buf[i] + g * zs[i] }
                    let o = nsDouble(Array(buf[0..<nw]), .quintic, steps: 5)
                    for i in 0..<nw { t[i] -= Double(lr) * o[i] }
                }
                for i in nw..<t.count { buf[i] = mu * buf[i] + g * zs[i]; t[i] -= Double(lr) * ratio * buf[i] }
            }
            assertClose(e.theta, t, tol: 2e-4, "zo-muon \(placement.rawValue)")
        }
    }

    func testZOMuonMatrixStepKeepsOnlyTheSignOfG() throws {
        // μ = 0: one step moves W by −η·NS(g·Z) = −η·sign(g)·NS(Z), whatever |g|.
        let lr: Float = 0.01
        for scale in [1.0, 1e4] {
            let set = try makeSet()
            let opt = try ZOMuon(set: set, options: ZOMuonOptions(eps: 1e-2, momentum: 0, nsSteps: 5, otherLRRatio: 0), backend: backend)
            let r = try opt.step(StepContext(step: 0, runSeed: 11, lr: lr, loss: { [self] in scale * f(host(set)) })).records[0]
            let o = nsDouble(Array(z(0)[0..<(rows * cols)]), .quintic, steps: 5)
            let w = backend.toHost(set.entries[0].tensor)
            for i in 0..<(rows * cols) {
                XCTAssertEqual(Double(w[i]), theta0[i] - Double(lr) * sign(Double(r.projectedGrad)) * o[i], accuracy: 2e-6, "scale \(scale) [\(i)]")
            }
            // ratio 0 freezes the other tensors (up to the probes' rounding).
            for (x, x0) in zip(backend.toHost(set.entries[1].tensor), theta0[(rows * cols)...]) { XCTAssertEqual(Double(x), x0, accuracy: 1e-6) }
        }
    }

    func testJaguarSignBothVariantsFollowTheirClosedForms() throws {
        let steps = 12, lr: Float = 0.01, tau: Float = 1e-2, beta = 0.3, mu = 0.8, fraction = 0.34
        for variant in JaguarVariant.allCases {
            let cfg = JaguarSignOptions(eps: tau, beta: Float(beta), fraction: fraction, variant: variant, momentum: Float(mu), smoothing: variant == .released)
            let e = try run(.jaguarSign(cfg), steps: steps, lr: lr)
            var t = theta0, m = [Double](repeating: 0, count: t.count)
            for s in 0..<steps {
                let blk = block(s, fraction: fraction, signs: variant == .paper), gr = grad(t)
                let g = blk.reduce(0) { $0 + $1.sign * gr[$1.index] }  // the central difference, exact here
                XCTAssertEqual(Double(e.records[s].projectedGrad), g, accuracy: 1e-3 * (1 + abs(g)), "\(variant) g at \(s)")
                switch variant {
                case .paper:
                    for (i, sg) in blk { m[i] = beta * m[i] + (1 - beta) * g * sg }
                    for i in t.indices { t[i] -= Double(lr) * sign(m[i]) }
                case .released:
                    var grad = [Double](repeating: 0, count: t.count)
                    for (i, _) in blk { grad[i] = sign(g) * Double(tau) * (1 - beta) }
                    for i in t.indices { m[i] = mu * m[i] + grad[i]; t[i] -= Double(lr) * m[i] }
                }
            }
            assertClose(e.theta, t, tol: 1e-5, "jaguar-sign \(variant.rawValue)")
            let state = (e.optimizer as! JaguarSign).state.flatMap { backend.toHost($0) }.map(Double.init)
            assertClose(state, m, tol: 1e-4, "jaguar-sign \(variant.rawValue) state")
        }
    }

    func testJaguarMuonFollowsItsClosedForm() throws {
        let steps = 9, lr: Float = 0.02, tau: Float = 1e-2, beta = 0.2, fraction = 0.5, ratio = 0.5
        for every in [1, 4] {
            let cfg = JaguarMuonOptions(eps: tau, beta: Float(beta), fraction: fraction, nsSteps: 6, orthogonalizeEvery: every, otherLRRatio: Float(ratio))
            let e = try run(.jaguarMuon(cfg), steps: steps, lr: lr)
            var t = theta0, m = [Double](repeating: 0, count: t.count), o = [Double](repeating: 0, count: rows * cols)
            let nw = rows * cols
            for s in 0..<steps {
                let blk = block(s, fraction: fraction, signs: true), gr = grad(t)
                let g = blk.reduce(0) { $0 + $1.sign * gr[$1.index] }
                for (i, sg) in blk { m[i] = beta * m[i] + (1 - beta) * g * sg }
                if s % every == 0 { o = nsDouble(Array(m[0..<nw]), .cubic, steps: 6) }
                for i in 0..<nw { t[i] -= Double(lr) * o[i] }
                for i in nw..<t.count { t[i] -= Double(lr) * ratio * sign(m[i]) }
            }
            assertClose(e.theta, t, tol: 5e-5, "jaguar-muon every \(every)")
        }
    }

    // MARK: the blocks

    // With β = 0 and μ = 0 (released) one step moves exactly the k_rows × k_cols probed entries of
    // each tensor, by −η·ρτ, and leaves every other entry bit-identical; the paper variant's first
    // step too (its memory is 0 elsewhere), and later steps never touch an entry never probed.
    func testOnlyTheProbedEntriesMove() throws {
        let fraction = 0.34, lr: Float = 0.05, tau: Float = 1e-2
        for (variant, steps) in [(JaguarVariant.released, 1), (.paper, 1), (.paper, 3)] {
            let cfg = JaguarSignOptions(eps: tau, beta: 0, fraction: fraction, variant: variant, momentum: 0)
            let e = try run(.jaguarSign(cfg), steps: steps, lr: lr)
            let probed = Set((0..<steps).flatMap { block($0, fraction: fraction, signs: variant == .paper).map(\.index) })
            let t0 = theta0.map { Double(Float($0)) }
            let moved = Set(t0.indices.filter { e.theta[$0] != t0[$0] })
            if steps == 1 {
                XCTAssertEqual(moved, probed, "\(variant)")
                // 2 rows × 3 cols of W (6×10 at 0.34) and 1 of v (5 at 0.34): the selection sizes.
                XCTAssertEqual(probed.count, 2 * 3 + 1)
                let rho = sign(Double(e.records[0].projectedGrad))
                for (i, s) in block(0, fraction: fraction, signs: variant == .paper) {
                    XCTAssertEqual(e.theta[i], t0[i] - Double(lr) * rho * (variant == .paper ? s : Double(tau)), accuracy: 3e-7)
                }
            } else {
                // A later probe of opposite sign may move an entry back: moved ⊆ probed.
                XCTAssertTrue(moved.isSubset(of: probed), "\(variant): \(moved.subtracting(probed)) moved unprobed")
                XCTAssertGreaterThan(moved.count, 7)
            }
        }
    }

    // ZO-FAMILY.md §4.6, the final paper's variant: on f = ½‖θ‖² with d = 4, one coordinate per
    // step, β = 0 and η = 0, the memory of a visited coordinate is ĝ·s = (s·θᵢ)·s = θᵢ, so once
    // every coordinate has been visited m = θ₀ (the central difference is exact on a quadratic).
    func testPaperMemoryRecoversTheGradientOfHalfNormSquared() throws {
        let x0: [Float] = [0.7, -1.3, 0.25, 2.0]
        let t = try backend.tensor(x0, shape: [4], tag: .weights)
        let set = TrainableSet(entries: [.init(name: "x", tensor: t, tensorId: TrainableSet.tensorId("x"), decays: false)], spec: "test")
        let opt = try JaguarSign(set: set, options: JaguarSignOptions(eps: 1e-2, beta: 0, fraction: 0.1), backend: backend)
        XCTAssertEqual(opt.selections[0].selectedCount, 1)
        var visited = Set<Int>(), steps = 0
        while visited.count < 4 && steps < 100 {
            _ = try opt.step(StepContext(step: steps, runSeed: 11, lr: 0, loss: { [self] in backend.toHost(t).reduce(0) { $0 + 0.5 * Double($1) * Double($1) } }))
            var pc = zt_perm_make(4, stepSeed(runSeed: 11, step: steps, direction: 0), TrainableSet.tensorId("x"), ZT_STREAM_SELECT_COLS)
            visited.insert(Int(zt_perm_at(&pc, 0)))
            steps += 1
        }
        XCTAssertEqual(visited.count, 4, "every coordinate visited within 100 steps")
        // θ moved only by the probes' roundings (η = 0): m = θ₀ to the loss differences' f32 error.
        for (m, x) in zip(backend.toHost(opt.state[0]), x0) { XCTAssertEqual(m, x, accuracy: 2e-4 * (1 + abs(x))) }
    }

    // On a linear loss the recorded g is exactly the signed sum of the probed block's coefficients.
    func testLinearOracleGivesTheBlockSum() throws {
        let c = (0..<(rows * cols + n)).map { Double(($0 * 7) % 11) - 5 }
        for signs in [false, true] {
            let set = try makeSet()
            let opt = try JaguarSign(set: set, options: JaguarSignOptions(eps: 1e-2, fraction: 0.5, variant: signs ? .paper : .released), backend: backend)
            for t in 0..<4 {
                let r = try opt.step(StepContext(step: t, runSeed: 11, lr: 0, loss: { [self] in zip(c, host(set)).reduce(0) { $0 + $1.0 * $1.1 } })).records[0]
                let want = block(t, fraction: 0.5, signs: signs).reduce(0) { $0 + $1.sign * c[$1.index] }
                XCTAssertEqual(Double(r.projectedGrad), want, accuracy: 1e-3 * (1 + abs(want)), "signs \(signs) step \(t)")
            }
        }
    }

    // The selection is a uniform draw without replacement: π is a bijection of [0, n) and rank its
    // inverse; over 4 000 seeds each index is among the first k with frequency k/n (binomial:
    // 4 000·0.1 = 400 ± 4σ, σ ≈ 19), and pairs are not correlated (P(both) ≈ (k/n)·((k−1)/(n−1))).
    func testSelectionIsAUniformExactSizeDraw() {
        for size: UInt32 in [1, 2, 3, 5, 16, 17, 1000, 65537] {
            var p = zt_perm_make(size, 42, 7, ZT_STREAM_SELECT_ROWS)
            var seen = [Bool](repeating: false, count: Int(size))
            for i in 0..<size {
                let x = zt_perm_at(&p, i)
                XCTAssertLessThan(x, size)
                XCTAssertFalse(seen[Int(x)], "n = \(size): \(x) drawn twice")
                seen[Int(x)] = true
                XCTAssertEqual(zt_perm_rank(&p, x), i)
            }
        }
        let size = 20, k = 2, trials = 4000
        var count = [Int](repeating: 0, count: size), both01 = 0
        for s in 0..<trials {
            var p = zt_perm_make(UInt32(size), UInt64(s) &* 0x9E3779B97F4A7C15, 3, ZT_STREAM_SELECT_COLS)
            let chosen = (0..<k).map { Int(zt_perm_at(&p, UInt32($0))) }
            for c in chosen { count[c] += 1 }
            if chosen.contains(0) && chosen.contains(1) { both01 += 1 }
        }
        for (i, c) in count.enumerated() { XCTAssertEqual(Double(c), 400, accuracy: 76, "index \(i)") }
        XCTAssertEqual(Double(both01), Double(trials) * 0.1 * 1 / 19, accuracy: 4 * (Double(trials) * 0.1 / 19).squareRoot() + 1)
    }

    func testSelectionSizes() {
        let cases: [([Int], Double, Int, Int)] = [([576, 576], 0.1, 57, 57), ([192, 576], 0.1, 19, 57), ([576], 0.1, 1, 57),
                                                   ([9, 9], 0.1, 1, 1), ([3], 1, 1, 3), ([49152, 576], 0.01, 491, 5)]
        for (shape, fraction, kr, kc) in cases {
            let s = JaguarSelection(shape: shape, fraction: fraction, signs: false)
            XCTAssertEqual([s.kRows, s.kCols], [kr, kc], "\(shape) at \(fraction)")
        }
    }
}
