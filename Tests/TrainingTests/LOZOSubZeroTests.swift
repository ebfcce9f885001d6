import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// lozo and subzero (LOZO.swift, SubZero.swift) against ZO-FRONTIER §3–§4's worked numbers, the
/// window-boundary rule, LOZO-M's re-projection, SubZero's scaling and QR, and on the tiny Llama:
/// the batched g against θ ± εE_k written into θ, replay/resume/keep-best bit for bit.
final class LOZOSubZeroTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()
    let u = pow(2.0, -24.0)

    func directions(_ w: [Float], _ shape: [Int], q: Int, r: Int, id: UInt32 = 1) throws -> (LowRankDirections, Tensor) {
        let t = try backend.tensor(w, shape: shape, tag: .weights)
        return (try LowRankDirections(entries: [TrainableSet.Entry(name: "w", tensor: t, tensorId: id, decays: true)],
                                      directions: q, rank: r, backend: backend), t)
    }

    /// E_k = A_k B_kᵀ/√r in Double from host factors (aT: q·r × rows, bT: q·r × cols).
    func dense(_ f: (aT: [Float], bT: [Float]), k: Int, rows: Int, cols: Int, r: Int) -> [Double] {
        (0..<(rows * cols)).map { e in
            (0..<r).reduce(0.0) { s, l in s + Double(f.aT[(k * r + l) * rows + e / cols]) * Double(f.bT[(k * r + l) * cols + e % cols]) }
                / Double(r).squareRoot()
        }
    }

    // ZO-FRONTIER §3.7: W = [[1,0,0],[0,1,0]], f = ½‖W‖², r = 1, U = (1,2)ᵀ, V = (1,1,1)ᵀ: UVᵀ =
    // [[1,1,1],[2,2,2]], the central difference of a quadratic is exact, g = ⟨W, UVᵀ⟩ = 3, and
    // η = 0.1 gives W₁ = [[0.7,−0.3,−0.3],[−0.6,0.4,−0.6]] (1/√r is 1 at r = 1). Products g·u·v
    // are small integers, α = −0.1 rounds once (u) and each sum once more (½ulp ≤ u·0.7):
    // |error| ≤ 2u·|ηguv| + u ≤ 2.5e-7.
    func testLOZOWorkedQuadratic() throws {
        let (d, w) = try directions([1, 0, 0, 0, 1, 0], [2, 3], q: 1, r: 1)
        d.keyedFactorSource = { _, _, _, _ in ([1, 2], [1, 1, 1]) }
        let lozo = try LOZOUpdate(d, window: 50, momentum: 0)
        let e = dense(try d.hostFactors(0, seed: 9), k: 0, rows: 2, cols: 3, r: 1)
        func f(_ s: Double) -> Double { zip([1.0, 0, 0, 0, 1, 0], e).reduce(0) { $0 + pow($1.0 + s * $1.1, 2) } / 2 }
        let g = Float((f(0.01) - f(-0.01)) / 0.02)
        XCTAssertEqual(g, 3, accuracy: 1e-6)
        try lozo.apply(step: 0, seed: 9, g: [3], lr: 0.1, window: 9, previous: nil)
        for (x, y) in zip(backend.toHost(w), [0.7, -0.3, -0.3, -0.6, 0.4, -0.6]) { XCTAssertEqual(Double(x), y, accuracy: 2.5e-7) }
    }

    // The window rule with the real Philox factors (q = 2, r = 2, 5 × 4): V_k is the B_k of the
    // window's first step and stays for the window, U_k is each step's own; and on a window's first
    // step that is not step 0 (the step where the released code's update draws a different U from
    // the one it probed with), ΔW = −(η/q)Σ g_k E_k with E_k the probe's. f = ½‖W‖² makes g_k =
    // ⟨W, E_k⟩ exact. Update bound as LowRankSPSATests: (q·r + 3)·u·|α|·Σ|g a b| + u·|W₁|.
    func testLOZOWindowKeysAndAlignedUpdate() throws {
        let (rows, cols, q, r, nu) = (5, 4, 2, 2, 3)
        let w0: [Float] = (0..<(rows * cols)).map { Float($0 % 7) * 0.25 - 0.7 }
        let (d, w) = try directions(w0, [rows, cols], q: q, r: r, id: 11)
        let seeds = (0..<7).map { stepSeed(runSeed: 5, step: $0, direction: 0) }
        let spsa = try d.hostFactors(0, seed: seeds[3])
        let inWindow = try (3..<6).map { try d.hostFactors(0, seed: seeds[$0], bSeed: seeds[3]) }
        for f in inWindow { XCTAssertEqual(f.bT, spsa.bT, "V is the window's first step's B") }
        XCTAssertEqual(inWindow[0].aT, spsa.aT)
        XCTAssertNotEqual(inWindow[1].aT, inWindow[0].aT, "U is fresh each step")
        XCTAssertNotEqual(try d.hostFactors(0, seed: seeds[6], bSeed: seeds[6]).bT, spsa.bT, "the next window has a new V")

        let lozo = try LOZOUpdate(d, window: nu, momentum: 0)
        let factors = inWindow[0], lr: Float = 0.05
        let es = (0..<q).map { dense(factors, k: $0, rows: rows, cols: cols, r: r) }
        let g = es.map { e in Float(zip(w0, e).reduce(0.0) { $0 + Double($1.0) * $1.1 }) }
        try lozo.apply(step: nu, seed: seeds[3], g: g, lr: lr, window: seeds[3], previous: seeds[0])
        let w1 = backend.toHost(w), alpha = Double(lr) / Double(q)
        // The released rule on this step: the update's U is the next draw of the stream, not the
        // probe's. Its ΔW must be far outside the bound, or this test could not tell the two apart.
        let misaligned = try d.hostFactors(0, seed: seeds[4], bSeed: seeds[3])
        var miss = 0.0
        for p in 0..<(rows * cols) {
            let terms = (0..<q).map { Double(g[$0]) * es[$0][p] }
            let want = Double(w0[p]) - alpha * terms.reduce(0, +)
            let bound = Double(q * r + 3) * u * alpha * terms.map { abs($0) }.reduce(0, +) * Double(r).squareRoot() + u * abs(want)
            XCTAssertEqual(Double(w1[p]), want, accuracy: bound, "W[\(p)]")
            let other = Double(w0[p]) - alpha * (0..<q).reduce(0.0) { $0 + Double(g[$1]) * dense(misaligned, k: $1, rows: rows, cols: cols, r: r)[p] }
            miss = max(miss, abs(other - want))
        }
        XCTAssertGreaterThan(miss, 1e-2)
    }

    // ZO-FRONTIER §3.7, LOZO-M's window switch: N_old = (1,2)ᵀ (step 0: g = 1, U = (1,2)ᵀ, V_old =
    // (1,0)ᵀ), then step 1 opens a window (ν = 1) with V_new = (2,1)ᵀ, n = 2, β = 0.9, g = 3, U =
    // (1,−1)ᵀ: N_new = β·N_old·V_oldᵀV_new/n + (1−β)·g·U = (1.2, 1.5)ᵀ, ΔW = −η N_new V_newᵀ =
    // −η[[2.4,1.2],[3.0,1.5]]. Reference in Double with β as stored (Float(0.9); 1 − β is exact in
    // f32): scale, product and sum round N (≤ 3u|N|), the GEMM's product, α·product and the add
    // round ΔW (≤ 3u) — 6u·(|ΔW| + |W|) ≤ 6u·4.5 < 1.7e-6 per element.
    func testLOZOMomentumWindowSwitch() throws {
        let (d, w) = try directions([0, 0, 0, 0], [2, 2], q: 1, r: 1)
        let (s0, s1): (UInt64, UInt64) = (100, 200)
        d.keyedFactorSource = { _, _, a, b in (a == s0 ? [1, 2] : [1, -1], b == s0 ? [1, 0] : [2, 1]) }
        let lozo = try LOZOUpdate(d, window: 1, momentum: 0.9)
        let eta = 0.1
        try lozo.apply(step: 0, seed: s0, g: [1], lr: Float(eta), window: s0, previous: nil)
        let after0 = backend.toHost(w).map(Double.init)
        for (x, y) in zip(after0, [-0.1, 0, -0.2, 0]) { XCTAssertEqual(x, y, accuracy: 6 * u * 0.3) }
        try lozo.apply(step: 1, seed: s1, g: [3], lr: Float(eta), window: s1, previous: s0)
        let beta = Double(Float(0.9))
        let n = [beta * 1 + (1 - beta) * 3, beta * 2 - (1 - beta) * 3]
        // β's f32 rounding (|δβ| ≤ 2.4e-8) moves N by ≤ |δβ|·(|N_old| + |g·U|) ≤ 2.4e-8·5.
        XCTAssertEqual(n[0], 1.2, accuracy: 1.2e-7)
        XCTAssertEqual(n[1], 1.5, accuracy: 1.2e-7)
        assertClose(backend.toHost(lozo.factors[0]).map(Double.init), n, accuracy: 3 * u * 1.5)
        let delta = zip(backend.toHost(w).map(Double.init), after0).map { $0 - $1 }
        let want = [n[0] * 2, n[0] * 1, n[1] * 2, n[1] * 1].map { -Double(Float(eta)) * $0 }
        for (x, y) in zip(delta, want) { XCTAssertEqual(x, y, accuracy: 1.7e-6) }
        // Without the re-projection (C = V_oldᵀV_new/n = 1 here, so test a window whose C is not 1):
        // V_new = (0,1)ᵀ gives C = 0 and N_new = (1−β)·g·U alone.
        let (d2, _) = try directions([0, 0, 0, 0], [2, 2], q: 1, r: 1)
        d2.keyedFactorSource = { _, _, a, b in (a == s0 ? [1, 2] : [1, -1], b == s0 ? [1, 0] : [0, 1]) }
        let lozo2 = try LOZOUpdate(d2, window: 1, momentum: 0.9)
        try lozo2.apply(step: 0, seed: s0, g: [1], lr: Float(eta), window: s0, previous: nil)
        try lozo2.apply(step: 1, seed: s1, g: [3], lr: Float(eta), window: s1, previous: s0)
        assertClose(backend.toHost(lozo2.factors[0]).map(Double.init), [(1 - beta) * 3, -(1 - beta) * 3], accuracy: 3 * u * 0.3)
    }

    // ZO-FRONTIER §4.7: m = n = 2, r = 1, W = [[1,2],[3,4]], U = (1,0)ᵀ, V = (1,0)ᵀ, z0 = 1.5: scale
    // √(mn)/r = 2, Z = [[3,0],[0,0]], g = ⟨W, Z⟩ = 3, η = 0.1 ⇒ W₁ = [[0.1,2],[3,4]]. Every product
    // is exact in f32 (2·1.5·1 = 3); α = −0.1 and the sum 1 − 0.9 round once each: ≤ 2u·1.
    func testSubZeroWorkedQuadratic() throws {
        let (d, w) = try directions([1, 2, 3, 4], [2, 2], q: 1, r: 1)
        let basis = try SubspaceBasis(d)
        d.rule = basis
        for t in [basis.uT[0], basis.vT[0]] { ([1, 0] as [Float]).withUnsafeBytes { backend.copy(t, fromHost: $0) } }
        basis.windowSeed = 1
        basis.z0Source = { _, _ in [1.5] }
        let z = dense(try d.hostFactors(0, seed: 3), k: 0, rows: 2, cols: 2, r: 1)
        XCTAssertEqual(z, [3, 0, 0, 0])
        let g = Float(zip([1.0, 2, 3, 4], z).reduce(0) { $0 + $1.0 * $1.1 })
        XCTAssertEqual(g, 3)
        try d.update(seed: 3, g: [g], lr: 0.1)
        for (x, y) in zip(backend.toHost(w), [0.1, 2, 3, 4]) { XCTAssertEqual(Double(x), y, accuracy: 2 * u) }
    }

    // The QR: a closed form, [[3,0],[4,5]] = QR with Q = [[0.6,−0.8],[0.8,0.6]], R = [[5,4],[0,3]]
    // (positive diagonal); Householder in Double reproduces it to a few ulps of 1 (1e-15). And the
    // bases of real windows are orthonormal in f32: the Double Q's columns are orthonormal to
    // O(m·r·2⁻⁵³) (< 1e-12 here), rounding each entry to f32 moves it by ≤ u|q|, so by
    // Cauchy–Schwarz |(Q̃ᵀQ̃ − I)_ij| ≤ 2u·‖q_i‖‖q_j‖ + u² + 1e-12 ≤ 2u + 1e-12.
    func testQRClosedFormAndOrthonormalBases() throws {
        let q = orthonormalColumns([3, 0, 4, 5], rows: 2, cols: 2)
        for (x, y) in zip(q, [0.6, -0.8, 0.8, 0.6]) { XCTAssertEqual(x, y, accuracy: 1e-15) }
        let (rows, cols, r) = (48, 20, 6)
        let (d, _) = try directions([Float](repeating: 0, count: rows * cols), [rows, cols], q: 1, r: r, id: 3)
        let basis = try SubspaceBasis(d)
        for window in [UInt64(0xAB), 0xCD] {
            try basis.use(window: window)
            for (t, m) in [(basis.uT[0], rows), (basis.vT[0], cols)] {
                let h = backend.toHost(t)   // r × m: the columns of U as rows
                for i in 0..<r {
                    for j in 0..<r {
                        let dot = (0..<m).reduce(0.0) { $0 + Double(h[i * m + $1]) * Double(h[j * m + $1]) }
                        XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 2 * u + 1e-12, "window \(window) (\(i),\(j)) of a \(m)-row basis")
                    }
                }
            }
        }
        // Determinism: the same window's bases again, bit for bit, after another window.
        let again = try SubspaceBasis(d)
        try again.use(window: 0xCD)
        XCTAssertEqual(backend.toHost(again.uT[0]), backend.toHost(basis.uT[0]))
        XCTAssertEqual(backend.toHost(again.vT[0]), backend.toHost(basis.vT[0]))
    }

    // SubZero's scaling. Exact: for orthonormal U, V, ‖E‖²_F = (mn/r²)‖z0‖²_F — E‖E‖² = mn, the
    // norm of a full Gaussian z. Checked on the real bases (error from the f32 bases and factors:
    // (Q̃ᵀQ̃ − I) ≤ 2u per entry, A's r-term products ≤ (r + 2)u relative: 2(2r + r + 2)u relative).
    // Statistical, within a window: E_z0[⟨G, E⟩E] = (mn/r²)·UUᵀ G VVᵀ (ZO-FRONTIER §4.6) — the update
    // path over q = 2¹⁸ directions sharing U, V, with g_k = ⟨G, E_k⟩ (a linear loss) and η = 1, moves
    // W by −mean(g·E). Per entry, g = c⟨M, z0⟩ and E_ij = c⟨K, z0⟩ with c² = mn/r², M = UᵀGV,
    // K = u_i v_jᵀ (‖K‖ ≤ 1): E[g²E_ij²] = c⁴(‖M‖²‖K‖² + 2⟨M,K⟩²) ≤ 3c⁴‖G‖², so 5 standard
    // deviations are 5√3·c²‖G‖/√q. Over windows, U Uᵀ of a Haar basis has mean (r/m)I, which with the
    // above gives E[gE] = G: checked as the mean of U Uᵀ over 2048 windows (entries of U Uᵀ are in
    // [−1, 1]: 5 standard deviations ≤ 5/√2048).
    func testSubZeroScaling() throws {
        let (m, n, r, q) = (4, 6, 2, 1 << 18)
        let gradient: [Double] = (0..<(m * n)).map { Double(($0 * 5) % 7) - 3 }
        let (d, w) = try directions([Float](repeating: 0, count: m * n), [m, n], q: q, r: r, id: 21)
        let basis = try SubspaceBasis(d)
        d.rule = basis
        try basis.use(window: 0x5AB)
        let seed: UInt64 = 0x5EED
        let f = try d.hostFactors(0, seed: seed)
        let c2 = Double(m * n) / Double(r * r)
        var z0 = [Float](repeating: 0, count: q * r * r)
        z0.withUnsafeMutableBytes { backend.copy(basis.z0, toHost: $0) }
        for k in 0..<8 {
            let e = dense(f, k: k, rows: m, cols: n, r: r)
            let want = c2 * z0[(k * r * r)..<((k + 1) * r * r)].reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(e.reduce(0) { $0 + $1 * $1 }, want, accuracy: 2 * Double(3 * r + 2) * u * want, "‖E_\(k)‖²")
        }
        var g = [Float](repeating: 0, count: q)
        for k in 0..<q {
            // ⟨G, A Bᵀ⟩/√r = Σ_l a_lᵀ G b_l/√r.
            var s = 0.0
            for l in 0..<r {
                let (ra, rb) = ((k * r + l) * m, (k * r + l) * n)
                for i in 0..<m {
                    var row = 0.0
                    for j in 0..<n { row += gradient[i * n + j] * Double(f.bT[rb + j]) }
                    s += Double(f.aT[ra + i]) * row
                }
            }
            g[k] = Float(s / Double(r).squareRoot())
        }
        try d.update(seed: seed, g: g, lr: 1)
        let (uh, vh) = (backend.toHost(basis.uT[0]).map(Double.init), backend.toHost(basis.vT[0]).map(Double.init))
        func pu(_ i: Int, _ j: Int) -> Double { (0..<r).reduce(0) { $0 + uh[$1 * m + i] * uh[$1 * m + j] } }
        func pv(_ i: Int, _ j: Int) -> Double { (0..<r).reduce(0) { $0 + vh[$1 * n + i] * vh[$1 * n + j] } }
        let norm = gradient.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let bound = 5 * 3.0.squareRoot() * c2 * norm / Double(q).squareRoot()
        let moved = backend.toHost(w)
        var largest = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var want = 0.0
                for a in 0..<m { for b in 0..<n { want += pu(i, a) * gradient[a * n + b] * pv(b, j) } }
                want *= c2
                largest = max(largest, abs(want))
                XCTAssertEqual(-Double(moved[i * n + j]), want, accuracy: bound, "(\(i),\(j))")
            }
        }
        // A factor √r or r off (the 1/r conventions) moves the largest entry by ≥ 0.4·|it|.
        XCTAssertGreaterThan(0.4 * largest, bound)

        let (d1, _) = try directions([Float](repeating: 0, count: m * n), [m, n], q: 1, r: r, id: 22)
        let one = try SubspaceBasis(d1)
        var mean = [Double](repeating: 0, count: m * m)
        let windows = 2048
        for s in 0..<windows {
            try one.use(window: UInt64(s) &* 0x9E37_79B9 &+ 1)
            let h = backend.toHost(one.uT[0]).map(Double.init)
            for i in 0..<m { for j in 0..<m { mean[i * m + j] += (0..<r).reduce(0) { $0 + h[$1 * m + i] * h[$1 * m + j] } / Double(windows) } }
        }
        for i in 0..<m { for j in 0..<m { XCTAssertEqual(mean[i * m + j], i == j ? Double(r) / Double(m) : 0, accuracy: 5 / Double(windows).squareRoot()) } }
    }

    // MARK: tiny Llama

    func trainer(_ lm: CausalLM, _ config: OptimizerConfig, _ dir: URL, steps: Int, keepBest: Bool = false) throws -> Trainer {
        let options = RunOptions(task: "tiny", steps: steps, batchSize: 4, lr: 1e-3, schedule: .linear, evalEvery: 2, seed: 7, dataSeed: 3,
                                 saveEvery: 1, keepBest: keepBest)
        return try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: options,
                           optimizer: try config.make(model: lm), runDir: dir,
                           base: BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32"))
    }

    /// (ℓ₊ₖ, ℓ₋ₖ) of `loss` with θ ± εE_k written into the covered matrices, E_k in Double from `factors(i)`.
    func writtenProbes(_ d: LowRankDirections, eps: Float, factors: (Int) throws -> (aT: [Float], bT: [Float]),
                       loss: () throws -> Double) throws -> [(plus: Double, minus: Double)] {
        let saved = d.entries.map { backend.toHost($0.tensor) }
        let f = try d.entries.indices.map(factors)
        return try (0..<d.directions).map { k in
            let pair = try [1.0, -1.0].map { sign -> Double in
                for (i, e) in d.entries.enumerated() {
                    let (rows, cols) = (e.tensor.shape[0], e.tensor.shape[1])
                    let moved = zip(saved[i], dense(f[i], k: k, rows: rows, cols: cols, r: d.rank)).map { Float(Double($0) + sign * Double(eps) * $1) }
                    moved.withUnsafeBytes { backend.copy(e.tensor, fromHost: $0) }
                }
                defer { for (i, e) in d.entries.enumerated() { saved[i].withUnsafeBytes { backend.copy(e.tensor, fromHost: $0) } } }
                return try loss()
            }
            return (pair[0], pair[1])
        }
    }

    /// Step `t`'s recorded g against written probes at θ_t (the replay of steps < t on a fresh model),
    /// with the factors `factors(optimizer, i, seed)` say step t used. Bound as
    /// LowRankSPSATests: each loss within 4.8e-5, g within 2·4.8e-5/(2ε) + u|g|.
    func checkRecordedG(_ config: OptimizerConfig, eps: Float, records: [ZORecord], step t: Int, trainer: Trainer,
                        factors: (any ZOOptimizer, LowRankDirections, Int, UInt64) throws -> (aT: [Float], bT: [Float])) throws {
        let fresh = try tinyModel()
        let optimizer = try config.make(model: fresh)
        optimizer.replay(records.filter { Int($0.step) < t })
        let d = (optimizer as? LOZO)?.probe.directions ?? (optimizer as! SubZero).probe.directions
        let mine = records.filter { Int($0.step) == t }
        let scorer = Scorer(model: fresh, tokenizer: try tokenizer(), maxLength: trainer.options.maxLength)
        let examples = (trainer.data as! TaskData).minibatch(t)
        let written = try writtenProbes(d, eps: eps, factors: { try factors(optimizer, d, $0, mine[0].seed) }) {
            try scorer.score(examples, objective: trainer.options.objective).loss
        }
        for (k, r) in mine.enumerated() {
            let want = (written[k].plus - written[k].minus) / (2 * Double(eps))
            XCTAssertEqual(Double(r.projectedGrad), want, accuracy: 2 * 4.8e-5 / (2 * Double(eps)) + 6e-8 * abs(want), "step \(t) g_\(k)")
        }
        XCTAssertGreaterThan(mine.map { abs($0.projectedGrad) }.max()!, 0.01, "the probe saw no signal")
    }

    /// Replay (all steps, and keep-best's prefix) on fresh weights and a run stopped after 3 steps
    /// then resumed give the uninterrupted run's bits.
    func checkReplayAndResume(_ config: OptimizerConfig, steps: Int) throws {
        for keepBest in [false, true] {
            let lm = try tinyModel(), dir = tempDir()
            _ = try trainer(lm, config, dir, steps: steps, keepBest: keepBest).run()
            let traj = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(traj.header.optimizer, config)
            let fresh = try tinyModel()
            let best = traj.header.progress.bestStep
            try traj.header.optimizer.make(model: fresh).replay(traj.records.filter { Int($0.step) < best })
            XCTAssertTrue(weights(fresh) == weights(lm), "replay of \(best) steps differs (keep-best \(keepBest))")
            if !keepBest { XCTAssertFalse(weights(lm) == weights(try tinyModel()), "the weights did not move") }
        }
        let whole = try tinyModel(), dirA = tempDir()
        _ = try trainer(whole, config, dirA, steps: steps).run()
        let dirB = tempDir()
        XCTAssertThrowsError(try trainer(try tinyModel(), config, dirB, steps: steps).run(stopAfter: 3)) { XCTAssertTrue($0 is RunInterrupted) }
        let resumed = try tinyModel()
        _ = try trainer(resumed, config, dirB, steps: steps).run(resume: true)
        let a = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
        let b = try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot"))
        XCTAssertEqual(a.records, b.records)
        XCTAssertTrue(weights(whole) == weights(resumed), "resumed run's weights differ")
    }

    // LOZO-M with ν = 2 over 5 steps: windows open at steps 0, 2, 4 (two re-projections), and the
    // resume starts mid-window (step 3). Step 1's g (mid-window: V from step 0's seed) and step 2's
    // (a window's first step) against written probes of the factors keyed that way.
    func testLOZOOnTinyLlama() throws {
        let eps: Float = 5e-2
        let config = OptimizerConfig(LOZOOptions(eps: eps, directions: 2, rank: 2, window: 2, momentum: 0.5))
        let lm = try tinyModel(), dir = tempDir()
        let t = try trainer(lm, config, dir, steps: 3)
        _ = try t.run()
        let records = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot")).records
        let seeds = Dictionary(records.map { (Int($0.step), $0.seed) }, uniquingKeysWith: { a, _ in a })
        for step in [1, 2] {
            try checkRecordedG(config, eps: eps, records: records, step: step, trainer: t) { _, d, i, seed in
                try d.hostFactors(i, seed: seed, bSeed: seeds[step / 2 * 2]!)
            }
        }
        try checkReplayAndResume(config, steps: 5)
    }

    // SubZero with F = 2: bases refreshed at steps 0, 2, 4; the resume starts mid-window. Step 1's
    // and step 2's g against written probes of the factors √(mn/r)·U z0 and V.
    func testSubZeroOnTinyLlama() throws {
        let eps: Float = 5e-2
        let config = OptimizerConfig(SubZeroOptions(eps: eps, directions: 2, rank: 2, refreshEvery: 2))
        let lm = try tinyModel(), dir = tempDir()
        let t = try trainer(lm, config, dir, steps: 3)
        _ = try t.run()
        let records = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot")).records
        for step in [1, 2] {
            try checkRecordedG(config, eps: eps, records: records, step: step, trainer: t) { opt, d, i, seed in
                // The replay left the bases of step t − 1's window: step 2 opens a new one.
                if step % 2 == 0 { try (opt as! SubZero).basis.use(window: seed) }
                return try d.hostFactors(i, seed: seed)
            }
        }
        try checkReplayAndResume(config, steps: 5)
    }

    func testBadSettingsAreOneLine() throws {
        func message(_ name: String, _ given: [(flag: String, value: Any)]) -> String {
            do {
                _ = try OptimizerConfig.resolve(kind: OptimizerKind(rawValue: name), base: nil, eps: nil, given: given, peft: nil)
                return ""
            } catch { return "\(error)" }
        }
        XCTAssertEqual(message("lozo", [("--window", 0)]), "--window must be in 1...4294967295 steps (got 0)")
        XCTAssertEqual(message("lozo", [("--momentum", Float(1))]), "--momentum must be in [0, 1) for lozo (0: LOZO, > 0: LOZO-M; got 1.0)")
        XCTAssertEqual(message("lozo", [("--rank", 0)]), "--rank must be at least 1 (got 0)")
        XCTAssertEqual(message("subzero", [("--refresh-every", -3)]), "--refresh-every must be in 1...4294967295 steps (got -3)")
        XCTAssertEqual(message("subzero", [("--directions", 0)]), "--directions must be in 1...65535 (got 0)")
        XCTAssertTrue(message("subzero", [("--window", 5)]).contains("--window is an option of --optimizer lozo, not subzero"))
        XCTAssertTrue(message("lozo", [("--weight-decay", Float(0.1))]).contains("not available with lozo"))
        XCTAssertEqual(message("lozo", []), "")
        let lm = try tinyModel()
        XCTAssertThrowsError(try OptimizerConfig(SubZeroOptions(rank: 20)).make(model: lm)) {
            XCTAssertTrue("\($0)".hasPrefix("subzero: low-rank directions: rank 20 exceeds"), "\($0)")
            XCTAssertFalse("\($0)".contains("\n"))
        }
    }
}

/// Element-wise |a − b| ≤ accuracy.
private func assertClose(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssert(a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= accuracy }, "\(a) ≠ \(b) ± \(accuracy)", file: file, line: line)
}
