import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels
@testable import ZOTuneTraining

/// FZOO, Sparse MeZO and MeZO-SVRG against ZO-FRONTIER's closed forms (§2, §5, §6) with the
/// stream's own directions, read back from Philox by the definitions written out here, and
/// replay / resume bit for bit on the tiny Llama.
final class FrontierOptimizerTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    func makeSet(_ values: [Float], name: String = "theta") throws -> TrainableSet {
        let t = try backend.tensor(values, shape: [values.count], tag: .weights)
        return TrainableSet(entries: [.init(name: name, tensor: t, tensorId: TrainableSet.tensorId(name), decays: true)], spec: "test")
    }

    func host(_ set: TrainableSet) -> [Double] { backend.toHost(set.entries[0].tensor).map(Double.init) }

    /// FZOO's sign of element i of probe k (zt_frontier.h): −1 where bit i mod 32 of word
    /// ⌊i/32⌋ mod 4 of the Philox block ⌊i/128⌋ of (seed, tensor, ZT_STREAM_RADEMACHER + k) is set.
    func sign(_ seed: UInt64, _ k: Int, _ i: Int, name: String = "theta") -> Double {
        let w = zt_philox_block(seed, TrainableSet.tensorId(name), ZT_STREAM_RADEMACHER + UInt32(k), UInt64(i >> 7))
        let words = [w.v.0, w.v.1, w.v.2, w.v.3]
        return (words[(i >> 5) & 3] >> UInt32(i & 31)) & 1 == 1 ? -1 : 1
    }

    func z(_ seed: UInt64, _ n: Int, name: String = "theta") -> [Double] {
        (0..<n).map { Double(zt_normal_at(seed, TrainableSet.tensorId(name), 0, UInt64($0))) }
    }

    // MARK: FZOO (§2)

    // §2's worked numbers: θ = (1, 2), f = ½‖θ‖², ε = 0.1, N = 2, u₁ = (1, 1), u₂ = (1, −1):
    // ℓ₀ = 2.5, ℓ = (2.81, 2.41), σ = 0.2, g = (0.775, −0.225), θ₁ = (0.45, 1.0) at η = 1, of which
    // (0.05, 0) = ε²d/(2Nσ)·(u₁ + u₂) is the common-mode curvature term; the same with f × 1000.
    // The run seed is searched until the stream's own u₁, u₂ are those two vectors.
    func testFZOOWorkedNumbersAndCommonMode() throws {
        let runSeed = try XCTUnwrap((0..<4096 as Range<UInt64>).first { s in
            let seed = stepSeed(runSeed: s, step: 0, direction: 0)
            return [sign(seed, 0, 0), sign(seed, 0, 1), sign(seed, 1, 0), sign(seed, 1, 1)] == [1, 1, 1, -1]
        })
        for scale in [1.0, 1000.0] {
            let set = try makeSet([1, 2])
            let opt = try FZOO(set: set, options: FZOOOptions(eps: 0.1, probes: 2), backend: backend)
            let out = try opt.step(0, runSeed: runSeed, lr: 1) { [self] in scale * 0.5 * host(set).reduce(0) { $0 + $1 * $1 } }
            // θ ± 0.1 in f32 is off by ≤ ulp(2)/2 = 1.2e-7, so each ℓ by ≤ 2.4e-7·scale and each
            // g by ≤ 2·2.4e-7/(Nσ = 0.4) ≈ 1.2e-6 (σ's own error is of the same order): 1e-5.
            XCTAssertEqual(out.loss, 2.5 * scale, accuracy: 1e-6 * scale)
            XCTAssertEqual(out.records.map { Double($0.values[0]) }[0], 0.775, accuracy: 1e-5)
            XCTAssertEqual(out.records.map { Double($0.values[0]) }[1], -0.225, accuracy: 1e-5)
            XCTAssertEqual(Double(out.records[0].values[1]), 0.2 * scale, accuracy: 1e-5 * scale)
            let t = host(set)
            XCTAssertEqual(t[0], 0.45, accuracy: 1e-5, "scale \(scale)")
            XCTAssertEqual(t[1], 1.0, accuracy: 1e-5, "scale \(scale)")
            // Common mode: the signal alone, −(ε uᵀ∇f)/(Nσ) summed, is (0.5, 1.0); the rest is (0.05, 0)
            // = ε²d/(2Nσ)(u₁ + u₂) with d = 2, ε = 0.1, N = 2, σ = 0.2.
            let common = 0.01 * 2 / (2 * 2 * 0.2)
            XCTAssertEqual(t[0] - 0.5, -common * 2, accuracy: 1e-5)
        }
    }

    // σ = 0 (every probe sees the same loss): the released code divides 0 by 0 and writes NaN;
    // the engine leaves θ where the probes left it and records the skip. θ on multiples of 1/8 and
    // ε = 1/4 make every probe and undo exact in f32, so θ must come back bit for bit.
    func testFZOOSigmaGuard() throws {
        let theta: [Float] = [0.125, -0.5, 1.25, 3, -2.375]
        let set = try makeSet(theta)
        let opt = try FZOO(set: set, options: FZOOOptions(eps: 0.25, probes: 4), backend: backend)
        let out = try opt.step(0, runSeed: 5, lr: 1) { 0.6931 }
        XCTAssertEqual(backend.toHost(set.entries[0].tensor), theta)
        XCTAssertEqual(out.records.count, 4)
        XCTAssertTrue(out.records.allSatisfy { $0.values == [0, 0] })
        opt.replay(out.records)  // replay of a skipped step: the probes' (exact) moves only
        XCTAssertEqual(backend.toHost(set.entries[0].tensor), theta)
    }

    // §2's normalised-SGD property on a linear f = cᵀθ: ℓ_k − ℓ₀ = ε cᵀu_k, so the update
    // −η Σ(ℓ_k − ℓ₀)u_k/(Nσ) does not depend on ε (σ scales with ε). With the stream's u_k, both ε
    // give the closed form −η Σ_k (cᵀu_k − mean)… written out in double below.
    func testFZOOLinearStepIsIndependentOfEps() throws {
        let c: [Double] = [1, 2, 3, 4], n = 8
        var results: [[Double]] = []
        for eps: Float in [1e-2, 1e-1] {
            let set = try makeSet([0.5, 0.5, 0.5, 0.5])
            let opt = try FZOO(set: set, options: FZOOOptions(eps: eps, probes: n), backend: backend)
            _ = try opt.step(0, runSeed: 11, lr: 0.1) { [self] in zip(c, host(set)).reduce(0) { $0 + $1.0 * $1.1 } }
            results.append(host(set))
        }
        let seed = stepSeed(runSeed: 11, step: 0, direction: 0)
        let u = (0..<n).map { k in (0..<4).map { sign(seed, k, $0) } }
        let d = u.map { zip(c, $0).reduce(0) { $0 + $1.0 * $1.1 } }  // cᵀu_k
        let mean = d.reduce(0, +) / Double(n)
        let std = (d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)).squareRoot()
        let want = (0..<4).map { i in 0.5 - 0.1 * (0..<n).reduce(0.0) { $0 + d[$1] / (Double(n) * std) * u[$1][i] } }
        // ℓ_k − ℓ₀ ≈ ε·cᵀu_k ~ 1e-2 computed from f32 θ (rounding 6e-8 per coordinate, ×|c| ≤ 10):
        // relative error of g ≈ 6e-7/1e-2 = 6e-5 at ε = 1e-2; on a step of ~0.1: 1e-5.
        for r in results { for i in 0..<4 { XCTAssertEqual(r[i], want[i], accuracy: 1e-5) } }
    }

    // MARK: MeZO-SVRG (§5)

    /// §5's closed form of one full step then one minibatch step with a shared z.
    static func svrgReference(theta0: [Double], a: [[Double]], batch: Int, zBar: [Double], z: [Double], lr1: Double, lr2: Double)
        -> (afterFull: [Double], after: [Double], gBar: Double) {
        let abar = (0..<theta0.count).map { i in a.reduce(0) { $0 + $1[i] } / Double(a.count) }
        func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
        let gBar = dot(zBar, zip(theta0, abar).map { $0 - $1 })
        let t1 = theta0.indices.map { theta0[$0] - lr1 * gBar * zBar[$0] }
        let g1 = dot(z, zip(t1, a[batch]).map { $0 - $1 }), g2 = dot(z, zip(theta0, a[batch]).map { $0 - $1 })
        let t2 = t1.indices.map { t1[$0] - lr2 * ((g1 - g2) * z[$0] + gBar * zBar[$0]) }
        return (t1, t2, gBar)
    }

    func testSVRGSharedZClosedForm() throws {
        // The reference reproduces §5's worked numbers with its hand-picked directions.
        let a: [[Double]] = [[0, 0], [2, 2]]
        let hand = Self.svrgReference(theta0: [3, 1], a: a, batch: 0, zBar: [1, 0], z: [1, 1], lr1: 0.5, lr2: 0.1)
        XCTAssertEqual(hand.gBar, 2); XCTAssertEqual(hand.afterFull, [2, 1])
        XCTAssertEqual(hand.after[0], 1.9, accuracy: 1e-15); XCTAssertEqual(hand.after[1], 1.1, accuracy: 1e-15)

        // The engine with the stream's z̄ (step 0) and z (step 1): full batch F = mean f_i at the
        // anchor step, the minibatch {a₁} after; η = 0.1, η₁ = 5η = 0.5.
        let set = try makeSet([3, 1])
        let opt = try MeZOSVRG(set: set, options: MeZOSVRGOptions(eps: 1e-2, anchorEvery: 2, anchorBatches: 1, anchorLRScale: 5), backend: backend)
        func f(_ t: [Double], _ c: [Double]) -> Double { 0.5 * zip(t, c).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
        _ = try opt.step(0, runSeed: 3, lr: 0.1) { [self] in (f(host(set), a[0]) + f(host(set), a[1])) / 2 }
        // Anchor regression: θ̄ is the pre-update θ bit for bit (the released code's aliased copy fails this).
        XCTAssertEqual(backend.toHost(opt.anchor[0]), [3, 1])
        let afterFull = host(set)
        _ = try opt.step(1, runSeed: 3, lr: 0.1) { [self] in f(host(set), a[0]) }
        let ref = Self.svrgReference(theta0: [3, 1], a: a, batch: 0, zBar: z(stepSeed(runSeed: 3, step: 0, direction: 0), 2),
                                     z: z(stepSeed(runSeed: 3, step: 1, direction: 0), 2), lr1: 0.5, lr2: 0.1)
        // Central differences are exact on quadratics; what is left is θ ± εz rounded to f32
        // (≤ 6e-8·|θ| ≈ 2e-7 per coordinate, over 2ε = 2e-2: ~1e-5 on g, × η·|z| ≲ 0.5 on θ): 1e-5.
        for i in 0..<2 {
            XCTAssertEqual(afterFull[i], ref.afterFull[i], accuracy: 1e-5)
            XCTAssertEqual(host(set)[i], ref.after[i], accuracy: 1e-5)
        }
        XCTAssertEqual(backend.toHost(opt.anchor[0]), [3, 1], "a minibatch step must not touch θ̄")
    }

    // MARK: Sparse MeZO (§6)

    // §6: θ = (0.05, −0.2, −0.01, 1.0), h = 0.1 ⇒ m = (1, 0, 1, 0) (the signed rule: (1, 1, 1, 0)).
    // Sparsity 0.5 keeps the 2 smallest |θ| (h = 0.05, the same mask). With ε = 0.1 the first probe
    // moves θ₁ by 0.1·z₁: a mask recomputed from the perturbed θ would drop it (the worked
    // (0, 0, 1, 0) case with z = 1) and the restore would miss. The engine keeps the clean mask,
    // restores, and follows θ ← θ − η g m⊙z with g = (m⊙z)ᵀθ (exact on ½‖θ‖²).
    func testSparseMeZOCleanMaskAndRestore() throws {
        // The hand-worked case of §6 (z = 1, η = 1): g = 0.04, θ₁ = (0.01, −0.2, −0.05, 1.0).
        let theta: [Double] = [0.05, -0.2, -0.01, 1.0], m: [Double] = [1, 0, 1, 0]
        let gHand = zip(m, theta).reduce(0) { $0 + $1.0 * $1.1 }
        XCTAssertEqual(gHand, 0.04, accuracy: 1e-15)
        XCTAssertEqual(theta.indices.map { theta[$0] - gHand * m[$0] }[2], -0.05, accuracy: 1e-15)
        XCTAssertEqual(theta.indices.map { abs(theta[$0] + 0.1 * m[$0]) <= 0.1 ? 1 : 0 }, [0, 0, 1, 0])

        let set = try makeSet(theta.map(Float.init))
        let opt = try SparseMeZO(set: set, options: SparseMeZOOptions(eps: 0.1, sparsity: 0.5), backend: backend)
        let zs = z(stepSeed(runSeed: 1, step: 0, direction: 0), 4)
        XCTAssertGreaterThan(abs(0.05 + 0.1 * zs[0]), 0.05, "this seed should move θ₁ past h = 0.05 on the first probe")
        let out = try opt.step(0, runSeed: 1, lr: 0.5) { [self] in 0.5 * host(set).reduce(0) { $0 + $1 * $1 } }
        let mask: [UInt8] = { var b = [UInt8](repeating: 9, count: 4); b.withUnsafeMutableBytes { backend.copy(opt.masks[0], toHost: $0) }; return b }()
        XCTAssertEqual(mask, [1, 0, 1, 0])
        let g = zip(m, zip(zs, theta)).reduce(0) { $0 + $1.0 * $1.1.0 * $1.1.1 }
        // ε = 0.1 probes of |θ| ≤ 1 in f32: ℓ± off by ≤ 1e-7, g by ≤ 1e-6; the step η·g·z ≤ 1e-6.
        XCTAssertEqual(Double(out.records[0].projectedGrad), g, accuracy: 1e-6)
        let t = host(set)
        XCTAssertEqual(t[1], -0.2 as Float == Float(t[1]) ? t[1] : .nan); XCTAssertEqual(Float(t[1]), Float(-0.2))
        XCTAssertEqual(Float(t[3]), Float(1.0))
        for i in [0, 2] { XCTAssertEqual(t[i], theta[i] - 0.5 * g * zs[i], accuracy: 2e-6, "θ[\(i)]") }
    }

    // §6: a tensor of 10 distinct |θ| at sparsity 0.8 perturbs exactly 2 entries (the 2 smallest |θ|).
    func testSparseMeZOPercentile() throws {
        let theta: [Float] = [0.3, -0.1, 0.7, -0.9, 0.2, 0.5, -0.4, 0.8, 0.6, -1.0]
        let set = try makeSet(theta)
        let opt = try SparseMeZO(set: set, options: SparseMeZOOptions(eps: 1e-3, sparsity: 0.8), backend: backend)
        _ = try opt.step(0, runSeed: 2, lr: 1e-2) { [self] in 0.5 * host(set).reduce(0) { $0 + $1 * $1 } }
        let after = backend.toHost(set.entries[0].tensor)
        XCTAssertEqual((0..<10).filter { after[$0] != theta[$0] }, [1, 4], "only −0.1 and 0.2 move")
    }

    // MARK: replay and resume on the tiny Llama

    static let configs: [OptimizerConfig] = [
        OptimizerConfig(FZOOOptions(eps: 1e-2, probes: 4)),
        OptimizerConfig(SparseMeZOOptions(eps: 1e-2, sparsity: 0.8)),
        OptimizerConfig(MeZOSVRGOptions(eps: 1e-2, anchorEvery: 3, anchorBatches: 2, anchorLRScale: 4)),
    ]

    func trainer(_ lm: CausalLM, _ config: OptimizerConfig, _ dir: URL, steps: Int = 8, keepBest: Bool = true) throws -> Trainer {
        let options = RunOptions(task: "tiny", steps: steps, batchSize: 4, lr: 1e-3, schedule: .linear, evalEvery: 4, seed: 7, dataSeed: 3,
                                 saveEvery: 2, keepBest: keepBest)
        return try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: options,
                           optimizer: try config.make(set: TrainableSet.full(lm), backend: backend), runDir: dir,
                           base: BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32"))
    }

    // Replay of the trajectory on the base weights, and a run stopped after 3 steps and resumed,
    // both give the uninterrupted run's weights bit for bit; keep-best replays to the best step.
    func testReplayAndResumeBitForBit() throws {
        for config in Self.configs {
            for keepBest in [false, true] {
                let lm = try tinyModel(), dir = tempDir()
                _ = try trainer(lm, config, dir, keepBest: keepBest).run()
                let traj = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot"))
                XCTAssertEqual(traj.header.optimizer, config)
                XCTAssertTrue(traj.records.allSatisfy { $0.values.count == traj.header.recordFields.count })
                XCTAssertTrue(traj.records.contains { $0.projectedGrad != 0 }, "\(config)")
                let fresh = try tinyModel()
                let best = traj.header.progress.bestStep
                try traj.header.optimizer.make(set: TrainableSet.full(fresh), backend: backend).replay(traj.records.filter { Int($0.step) < best })
                XCTAssertTrue(weights(fresh) == weights(lm), "\(config): replay of \(best) steps differs (keep-best \(keepBest))")
                if !keepBest { XCTAssertFalse(weights(lm) == weights(try tinyModel()), "\(config): the weights did not move") }
            }
            let whole = try tinyModel(), dirA = tempDir()
            _ = try trainer(whole, config, dirA).run()
            let dirB = tempDir()
            XCTAssertThrowsError(try trainer(try tinyModel(), config, dirB).run(stopAfter: 4)) { XCTAssertTrue($0 is RunInterrupted) }
            let resumed = try tinyModel()
            _ = try trainer(resumed, config, dirB).run(resume: true)
            let a = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
            let b = try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(a.records, b.records, "\(config)")
            XCTAssertTrue(weights(whole) == weights(resumed), "\(config): resumed run's weights differ")
        }
    }
}
