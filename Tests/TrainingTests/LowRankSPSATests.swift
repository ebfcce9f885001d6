import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// lowrank-spsa (LowRankSPSA.swift) through the ordinary trainer on the tiny Llama: its g against
/// ordinary forwards with θ ± εE_k written into θ, its update against a naive Double reference
/// built from the same factors, and replay/resume bit for bit. In an extension of
/// LowRankProbeTests to share `inPlaceProbes`.
extension LowRankProbeTests {
    func spsaTrainer(_ lm: CausalLM, _ config: OptimizerConfig, _ dir: URL, steps: Int, keepBest: Bool = false) throws -> Trainer {
        let options = RunOptions(task: "tiny", steps: steps, batchSize: 4, lr: 1e-3, schedule: .linear, evalEvery: 2, seed: 7, dataSeed: 3,
                                 saveEvery: 1, keepBest: keepBest)
        return try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: options,
                           optimizer: try config.make(model: lm), runDir: dir,
                           base: BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32"))
    }

    // Step 0 through the trainer. g_k: the trainer's recorded values against (ℓ₊ − ℓ₋)/2ε of
    // `Scorer.score` on step 0's minibatch with θ ± εE_k written into a fresh model; bound as
    // testBatchedClassificationProbeEqualsSequentialScores: each loss within 4.8e-5, so g within
    // 2·4.8e-5/(2ε), plus g's own f32 rounding (2⁻²⁴|g|).
    // ΔW: the recorded (seed, g, η) into −(η/q)Σ_k g_k A_k B_kᵀ/√r in Double from the same factors.
    // The update path rounds g_k·a once (u = 2⁻²⁴ relative), sums q·r products in f32 (≤ q·r·u of
    // Σ|g a b|), rounds α = −η/(q√r) and its product (2u), then adds into W (½ulp(W₁) ≤ u|W₁|):
    // |ΔW − ref| ≤ (q·r + 3)·u·|α|·Σ|g a b| + u·|W₁|, evaluated per element.
    func testLowRankSPSAFirstStepAgainstInPlaceProbesAndDoubleUpdate() throws {
        let (q, r, eps): (Int, Int, Float) = (3, 2, 5e-2)
        let config = OptimizerConfig(LowRankSPSAOptions(eps: eps, directions: q, rank: r))
        let lm = try tinyModel(), dir = tempDir()
        let trainer = try spsaTrainer(lm, config, dir, steps: 1)
        _ = try trainer.run()
        let records = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot")).records
        XCTAssertEqual(records.map(\.direction), [0, 1, 2])
        XCTAssertEqual(Set(records.map(\.seed)).count, 1)
        let (seed, lr, g) = (records[0].seed, records[0].lr, records.map(\.projectedGrad))

        let fresh = try tinyModel()
        let start = weights(fresh)
        let probe = try LowRankProbe(model: fresh, set: TrainableSet.full(fresh), directions: q, rank: r, eps: eps)
        let task = trainer.data as! TaskData
        let scorer = Scorer(model: fresh, tokenizer: try tokenizer(), maxLength: trainer.options.maxLength)
        let examples = task.minibatch(0)
        let sequential = try inPlaceProbes(probe, seed: seed) { try scorer.score(examples, objective: trainer.options.objective).loss }
        for k in 0..<q {
            let want = (sequential[k].plus - sequential[k].minus) / (2 * Double(eps))
            XCTAssertEqual(Double(g[k]), want, accuracy: 2 * 4.8e-5 / (2 * Double(eps)) + 6e-8 * abs(want), "g_\(k)")
        }
        XCTAssertGreaterThan(g.map { abs($0) }.max()!, 0.01, "the probe saw no signal")

        let trained = weights(lm)
        for name in probe.heldFixed { XCTAssertEqual(trained[name], start[name], "\(name) is held fixed") }
        let u = pow(2.0, -24.0), alpha = Double(lr) / (Double(q) * Double(r).squareRoot())
        var worst = 0.0
        for (i, e) in probe.directions.entries.enumerated() {
            let (rows, cols) = (e.tensor.shape[0], e.tensor.shape[1])
            let (aT, bT) = try probe.directions.hostFactors(i, seed: seed)
            let w0 = start[e.name]!, w1 = trained[e.name]!
            for p in 0..<rows {
                for c in 0..<cols {
                    var s = 0.0, abs = 0.0
                    for k in 0..<q {
                        for l in 0..<r {
                            let t = Double(g[k]) * Double(aT[(k * r + l) * rows + p]) * Double(bT[(k * r + l) * cols + c])
                            s += t
                            abs += Swift.abs(t)
                        }
                    }
                    let want = Double(w0[p * cols + c]) - alpha * s, got = Double(w1[p * cols + c])
                    let bound = Double(q * r + 3) * u * alpha * abs + u * Swift.abs(want)
                    XCTAssertLessThanOrEqual(Swift.abs(got - want), bound, "\(e.name)[\(p),\(c)]")
                    worst = max(worst, Swift.abs(got - want) / max(bound, .leastNormalMagnitude))
                }
            }
            XCTAssertNotEqual(w1, w0, "\(e.name) did not move")
        }
        XCTAssertLessThanOrEqual(worst, 1)
    }

    // Replay of the trajectory on fresh base weights, keep-best's replay to the best step, and a
    // run stopped after 2 steps then resumed all give the uninterrupted run's bits.
    func testLowRankSPSAReplayAndResumeBitForBit() throws {
        let config = OptimizerConfig(LowRankSPSAOptions(eps: 1e-2, directions: 2, rank: 1))
        for keepBest in [false, true] {
            let lm = try tinyModel(), dir = tempDir()
            _ = try spsaTrainer(lm, config, dir, steps: 4, keepBest: keepBest).run()
            let traj = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(traj.header.optimizer, config)
            XCTAssertEqual(traj.records.count, 8)
            let fresh = try tinyModel()
            let best = traj.header.progress.bestStep
            try traj.header.optimizer.make(model: fresh).replay(traj.records.filter { Int($0.step) < best })
            XCTAssertTrue(weights(fresh) == weights(lm), "replay of \(best) steps differs (keep-best \(keepBest))")
            if !keepBest { XCTAssertFalse(weights(lm) == weights(try tinyModel()), "the weights did not move") }
        }
        let whole = try tinyModel(), dirA = tempDir()
        _ = try spsaTrainer(whole, config, dirA, steps: 4).run()
        let dirB = tempDir()
        XCTAssertThrowsError(try spsaTrainer(try tinyModel(), config, dirB, steps: 4).run(stopAfter: 2)) { XCTAssertTrue($0 is RunInterrupted) }
        let resumed = try tinyModel()
        _ = try spsaTrainer(resumed, config, dirB, steps: 4).run(resume: true)
        let a = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
        let b = try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot"))
        XCTAssertEqual(a.records, b.records)
        XCTAssertTrue(weights(whole) == weights(resumed), "resumed run's weights differ")
    }

    func testLowRankSPSABadSettingsAreOneLine() throws {
        func message(_ given: [(flag: String, value: Any)], peft: PEFTConfig? = nil) -> String {
            do {
                _ = try OptimizerConfig.resolve(kind: OptimizerKind(rawValue: "lowrank-spsa"), base: nil, eps: nil, given: given, peft: peft)
                return ""
            } catch { return "\(error)" }
        }
        XCTAssertEqual(message([("--directions", 0)]), "--directions must be in 1...65535 (got 0)")
        XCTAssertEqual(message([("--rank", 0)]), "--rank must be at least 1 (got 0)")
        XCTAssertTrue(message([("--weight-decay", Float(0.1))]).contains("not available with lowrank-spsa"))
        XCTAssertTrue(message([], peft: .lora(LoRAOptions())).contains("does not combine with --peft"))
        let lm = try tinyModel()
        XCTAssertThrowsError(try OptimizerConfig(LowRankSPSAOptions(directions: 2, rank: 40)).make(model: lm)) {
            XCTAssertTrue("\($0)".hasPrefix("lowrank-spsa: low-rank directions: rank 40 exceeds"), "\($0)")
            XCTAssertFalse("\($0)".contains("\n"))
        }
    }
}
