import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels
@testable import ZOTuneTraining

/// Zoop against PyTorch autograd on the tiny Llama (Fixtures/zoop, make_zoop_fixture.py): α from
/// the two noisy forwards is the directional derivative of each sequence's loss along the noise,
/// and the linear-layer estimate Ĝ = Σ α ξ xᵀ averages to the weight gradient. Then the trainer's
/// non-replayable path: save, resume and keep-best through the weights file.
final class ZoopTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    struct Fixture: Decodable {
        struct Small: Decodable {
            let sequences: [[Int32]]
            let losses: [Double]
            let output_grads: [[String: [Float]]]
        }
        struct Large: Decodable {
            let sequences: [[Int32]]
            let loss_sum: Double
            let weight_grads: [String: [Float]]
        }
        let small: Small
        let large: Large
    }

    func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: trainingFixtures.appendingPathComponent("zoop/zoop.json")))
    }

    func zoop(_ lm: CausalLM, _ options: ZoopOptions = ZoopOptions()) throws -> Zoop {
        try Zoop(model: lm, set: try options.trainableSet(lm), options: options)
    }

    /// A step context scoring the fixed batch: per-sequence LM losses, one forward, rows in order.
    func context(_ lm: CausalLM, _ batch: TokenBatch, step: Int, lr: Float) -> StepContext {
        StepContext(step: step, runSeed: 21, lr: lr, loss: { try languageModelLoss(lm, batch) },
                    scoreSamples: { try sequenceScore(lm, batch) })
    }

    // Per-sequence losses (left-padded batch) equal torch's sequences run one at a time, and
    // α_i = (ℓ_i(+εξ) − ℓ_i(−εξ))/2ε equals Σ_layers ⟨∂ℓ_i/∂y, ξ_i⟩ with torch's output gradients
    // and ξ regenerated from the Philox stream at each token's row of the padded batch.
    func testAlphaIsTheDirectionalDerivativeAlongTheNoise() throws {
        let fx = try fixture().small
        let lm = try tinyModel()
        let batch = TokenBatch.leftPadded(fx.sequences, padId: 0)
        let losses = try sequenceLosses(lm, batch)
        // The tiny Llama's f32 forward (logits ≤ 5, 2–6e-6 from torch on every kernel set, see
        // ForwardParityTests) moves a mean NLL of ~7 by ≤ 2·max|Δlogit| ≈ 1e-5, ~1.5e-6 relative;
        // 2e-5 relative is ~10× that, while a padding or shift bug changes a sequence's loss O(1).
        for (a, b) in zip(losses, fx.losses) { XCTAssertEqual(a, b, accuracy: 2e-5 * abs(b)) }

        let eps: Float = 1e-3
        let z = try zoop(lm, ZoopOptions(eps: eps))
        XCTAssertEqual(z.layers.count, 14)   // 7 linears × 2 blocks
        let before = weights(lm)
        _ = try z.step(context(lm, batch, step: 4, lr: 0))
        XCTAssertTrue(weights(lm) == before, "lr 0 must leave the weights")
        let seed = stepSeed(runSeed: 21, step: 4, direction: 0)
        var worst = 0.0, scale = 0.0
        for (i, seq) in fx.sequences.enumerated() {
            let offset = batch.length - seq.count
            var want = 0.0
            for (name, layer) in z.layers {
                let g = fx.output_grads[i][name]!
                XCTAssertEqual(g.count, seq.count * layer.width, name)
                for t in 0..<seq.count {
                    let row = UInt64(i * batch.length + offset + t)
                    for c in 0..<layer.width {
                        let xi = zt_normal_at(seed, layer.noiseId, ZT_STREAM_ACTIVATIONS, row * UInt64(layer.width) + UInt64(c))
                        want += Double(g[t * layer.width + c]) * Double(xi)
                    }
                }
            }
            worst = max(worst, abs(Double(z.alpha[i]) - want))
            scale = max(scale, abs(want))
        }
        // f32 losses of about 7 differ by ≈ 2εα: rounding gives ~1e-6/2ε ≈ 5e-4 of absolute
        // error; the central difference's ε² term is far below that.
        XCTAssertGreaterThan(scale, 0.05, "the noise must move the losses")
        XCTAssertLessThan(worst, 2e-3 + 1e-3 * scale, "α differs from the autograd directional derivative (scale \(scale))")
    }

    // E[Ĝ_W] = Σ_i ∂ℓ_i/∂W: the mean of K draws (lr 0) on 64 sequences lines up with torch's
    // gradient of Σℓ_i. With noise in every layer, α_i sums the loss's response to all of them
    // (≈ 4 000 noise dimensions per sequence here), so a single layer's estimate needs ~10⁵ draws
    // to settle; each layer is therefore tested with the noise on that layer alone
    // (--zoop-layers/--zoop-blocks), where α_i spans T_i·width ≤ 640 dimensions. How close the
    // mean must be follows from the draws' own spread: an unbiased estimate misses the truth by
    // about √(tr Σ / K), so cos ≈ ‖∇‖ / √(‖∇‖² + tr Σ/K) (0.3–0.55 here for K = 40: Zoop's
    // variance is large, as Lemma A.3's E[cos²] ≥ 1/(d + 2) for one draw says); a biased estimate
    // (wrong rows, wrong ξ, a transposed GEMM) falls far below its prediction. Asserted per
    // layer: cos > 0.7 × prediction and > 0.2 (an unrelated direction of these ≥ 512 dimensions
    // gives |cos| ≈ 0.04); over the 14 layers the mean of cos/prediction > 0.9 (a bias would pull
    // every layer down); and a negative control (the same mean against the other block's
    // gradient of that projection) stays below 0.3.
    func testEstimateAveragesToTheAutogradGradient() throws {
        let fx = try fixture().large
        let lm = try tinyModel()
        let batch = TokenBatch.leftPadded(fx.sequences, padId: 0)
        // The same per-sequence bound as above, summed (a sum of losses keeps the relative bound);
        // 1e-4 relative leaves 5× for the larger batch.
        XCTAssertEqual(try sequenceLosses(lm, batch).reduce(0, +), fx.loss_sum, accuracy: 1e-4 * fx.loss_sum)
        func cos(_ a: [Double], _ b: [Float]) -> Double {
            var ab = 0.0, aa = 0.0, bb = 0.0
            for k in a.indices { ab += a[k] * Double(b[k]); aa += a[k] * a[k]; bb += Double(b[k]) * Double(b[k]) }
            return ab / (aa * bb).squareRoot()
        }
        let draws = 40
        var ratios: [Double] = []
        for block in 0..<2 {
            for short in ["q", "k", "v", "o", "gate", "up", "down"] {
                let z = try zoop(lm, ZoopOptions(layers: [short], blocks: [block]))
                XCTAssertEqual(z.layers.count, 1)
                let name = z.layers.keys.first!
                var sum: [Double] = [], sumSq = 0.0
                z.onEstimate = { n, g in
                    guard n == name else { return }
                    let v = self.backend.toHost(g)
                    if sum.isEmpty { sum = [Double](repeating: 0, count: v.count) }
                    for k in 0..<v.count { sum[k] += Double(v[k]) }
                    sumSq += v.reduce(0.0) { $0 + Double($1) * Double($1) }
                }
                for t in 0..<draws { _ = try z.step(context(lm, batch, step: t, lr: 0)) }
                let truth = fx.weight_grads[name]!
                let mean = sum.map { $0 / Double(draws) }
                let traceCov = sumSq / Double(draws) - mean.reduce(0) { $0 + $1 * $1 }
                let g2 = truth.reduce(0.0) { $0 + Double($1) * Double($1) }
                let predicted = (g2 / (g2 + traceCov / Double(draws))).squareRoot()
                let c = cos(mean, truth)
                XCTAssertGreaterThan(c, max(0.2, 0.7 * predicted), "\(name): cos \(c), predicted \(predicted) for \(draws) draws")
                ratios.append(c / predicted)
                let other = name.replacingOccurrences(of: "layers.\(block).", with: "layers.\(1 - block).")
                XCTAssertLessThan(abs(cos(mean, fx.weight_grads[other]!)), 0.3, "\(name) vs \(other)")
            }
        }
        XCTAssertEqual(ratios.count, 14)
        XCTAssertGreaterThan(ratios.reduce(0, +) / Double(ratios.count), 0.9, "cos / predicted per layer: \(ratios)")
    }

    // A step moves each trained tensor by exactly η in Frobenius norm (SGD on Ĝ/‖Ĝ‖), only the
    // noisy layers' tensors, and the reported loss is L(θ) before the step.
    func testSGDStepLengthAndReportedLoss() throws {
        let lm = try tinyModel()
        let batch = TokenBatch.leftPadded(try fixture().small.sequences, padId: 0)
        let z = try zoop(lm, ZoopOptions(layers: ["q", "down"], blocks: [1]))
        XCTAssertEqual(z.set.entries.map(\.name), ["model.layers.1.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"])
        let before = weights(lm)
        let lossBefore = try sequenceLosses(lm, batch).reduce(0, +) / Double(batch.batch)
        let out = try z.step(context(lm, batch, step: 0, lr: 0.05))
        XCTAssertEqual(out.loss, lossBefore, "the clean forward reports L(θ) before the step")
        XCTAssertNotEqual(try sequenceLosses(lm, batch).reduce(0, +) / Double(batch.batch), lossBefore)
        for (name, w) in weights(lm) {
            let d = zip(w, before[name]!).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            if z.set.entries.contains(where: { $0.name == name }) {
                XCTAssertEqual(d, 0.05, accuracy: 1e-5, name)
            } else {
                XCTAssertEqual(d, 0, name)
            }
        }
    }

    func trainer(_ lm: CausalLM, _ options: ZoopOptions, _ dir: URL, keepBest: Bool) throws -> Trainer {
        let run = RunOptions(task: "tiny", steps: 10, batchSize: 4, lr: 1e-2, schedule: .linear, evalEvery: 4, seed: 7, dataSeed: 3,
                             saveEvery: 2, keepBest: keepBest)
        return try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: run,
                           optimizer: try OptimizerConfig.zoop(options).make(model: lm), runDir: dir,
                           base: BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32"))
    }

    // Zoop runs are deterministic; one stopped after 5 steps resumes from trainable.safetensors
    // (no replay) to the uninterrupted run's records and weights, SGD and Adam (whose moments are
    // saved with the weights); the header says the records cannot be replayed; keep-best ends on
    // the best evaluation's weights.
    func testTrainerSavesResumesAndKeepsBestWithoutReplay() throws {
        for options in [ZoopOptions(eps: 1e-2), ZoopOptions(eps: 1e-2, update: .adam)] {
            let whole = try tinyModel(), dirA = tempDir()
            _ = try trainer(whole, options, dirA, keepBest: false).run()
            let a = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(a.header.replayable, false)
            XCTAssertEqual(a.header.trainable, "zoop")
            XCTAssertEqual(a.records.count, 10)
            XCTAssertFalse(weights(whole) == weights(try tinyModel()), "the weights did not move")

            let again = try tinyModel()
            _ = try trainer(again, options, tempDir(), keepBest: false).run()
            XCTAssertTrue(weights(again) == weights(whole), "\(options.update): not deterministic")

            let dirB = tempDir()
            XCTAssertThrowsError(try trainer(try tinyModel(), options, dirB, keepBest: false).run(stopAfter: 5)) { XCTAssertTrue($0 is RunInterrupted) }
            let resumed = try tinyModel()
            _ = try trainer(resumed, options, dirB, keepBest: false).run(resume: true)
            let b = try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(a.records, b.records, "\(options.update)")
            XCTAssertTrue(weights(resumed) == weights(whole), "\(options.update): resumed weights differ")

            // Keep-best: the final weights are the best evaluation's snapshot (or the base).
            let kept = try tinyModel(), dirC = tempDir()
            let summary = try trainer(kept, options, dirC, keepBest: true).run()
            if summary.bestStep == 0 {
                XCTAssertTrue(weights(kept) == weights(try tinyModel()))
            } else if summary.bestStep < 10 {
                let snap = try SafetensorsFile(url: dirC.appendingPathComponent("best.safetensors"))
                XCTAssertEqual(snap.metadata["zotune_step"], String(summary.bestStep))
                for e in try options.trainableSet(kept).entries {
                    var v = [Float](repeating: 0, count: e.tensor.count)
                    try v.withUnsafeMutableBytes { try snap.read(e.name, into: $0, as: .f32) }
                    XCTAssertEqual(backend.toHost(e.tensor), v, e.name)
                }
            }
        }
    }

    // Missing saved weights on resume, and replaying a zoop trajectory, are clear errors.
    func testResumeWithoutWeightsIsAnError() throws {
        let dir = tempDir()
        XCTAssertThrowsError(try trainer(try tinyModel(), ZoopOptions(eps: 1e-2), dir, keepBest: false).run(stopAfter: 4))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("trainable.safetensors"))
        XCTAssertThrowsError(try trainer(try tinyModel(), ZoopOptions(eps: 1e-2), dir, keepBest: false).run(resume: true)) {
            XCTAssertTrue("\($0)".contains("trainable.safetensors") && "\($0)".contains("cannot be replayed"), "\($0)")
        }
    }
}
