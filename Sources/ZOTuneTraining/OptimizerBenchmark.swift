import Foundation
import ZOTuneBackend
import ZOTuneModels

/// One optimizer's step on a fixed batch (LM loss over all positions), against the forward and
/// the pass over θ measured in the same run: the step should cost about
/// forwards × forward + passes × pass, and its ledger peak should stay at the inference figure
/// plus the optimizer's state.
public struct OptimizerTiming: Sendable {
    public let optimizer: String
    /// Mean forwards per step (DiZO's searches amortised).
    public let forwardsPerStep: Double
    public let passesPerStep: Double
    public let stepSeconds: Double
    public let forwardSeconds: Double
    public let passSeconds: Double
    public let stateBytes: Int
    public let peakBytes: Int
    public let inferencePeakBytes: Int
    /// Newton–Schulz GEMM FLOPs per step, and the GEMM rate of the run's baseline.
    public let matrixFlopsPerStep: Double
    public let gemmFlopsPerSecond: Double
    /// DiZO: one step with its projection search (nil for the others).
    public var searchStepSeconds: Double? = nil

    /// forwards × forward time + passes × pass time + NS FLOPs at the measured GEMM rate.
    public var predictedSeconds: Double {
        forwardsPerStep * forwardSeconds + passesPerStep * passSeconds + matrixFlopsPerStep / gemmFlopsPerSecond
    }
    public var stepOverForward: Double { stepSeconds / forwardSeconds }
    public var stepOverPredicted: Double { stepSeconds / predictedSeconds }
    public var peakOverInference: Double { Double(peakBytes) / Double(max(1, inferencePeakBytes)) }

    public var json: [String: Any] {
        func r(_ x: Double) -> Double { (x * 1e4).rounded() / 1e4 }
        return ["optimizer": optimizer, "forwards_per_step": forwardsPerStep, "passes_per_step": passesPerStep,
                "step_s": r(stepSeconds), "forward_s": r(forwardSeconds), "pass_s": r(passSeconds), "predicted_s": r(predictedSeconds),
                "step_over_forward": r(stepOverForward), "step_over_predicted": r(stepOverPredicted), "state_bytes": stateBytes,
                "peak_bytes": peakBytes, "inference_peak_bytes": inferencePeakBytes, "peak_over_inference": r(peakOverInference),
                "matrix_tflop_per_step": r(matrixFlopsPerStep / 1e12), "gemm_gflops": r(gemmFlopsPerSecond / 1e9),
                "search_step_s": searchStepSeconds.map(r) ?? NSNull()]
    }
}

public enum OptimizerBenchmark {
    public typealias Baseline = (forward: Double, pass: Double, inferencePeak: Int, gemmRate: Double)

    /// The baseline of the run: one forward (time and ledger peak), one perturb pass over θ
    /// (scale 0 leaves θ unchanged but does all the work: z regenerated, θ read and written), and
    /// the FLOP rate of NS's largest GEMM, (r × r)·(r × n), for the largest hidden matrix.
    public static func baseline(model: CausalLM, batch: TokenBatch, set: TrainableSet, repeats: Int) throws -> Baseline {
        let backend = model.backend
        backend.ledger.resetPeaks()
        let forward = try backend.medianSeconds(repeats) { _ = try languageModelLoss(model, batch) }
        let peak = backend.ledger.snapshot.total.peak
        let pass = backend.medianSeconds(repeats) { set.perturb(backend, seed: 7, scale: 0) }
        var gemmRate = 1e12
        if let big = set.entries.filter(\.isHiddenMatrix).max(by: { $0.tensor.count < $1.tensor.count }) {
            let (r, n) = (min(big.tensor.shape[0], big.tensor.shape[1]), max(big.tensor.shape[0], big.tensor.shape[1]))
            let a = try backend.allocate([r, r], tag: .scratch), x = try backend.allocate([r, n], tag: .scratch)
            let c = try backend.allocate([r, n], tag: .scratch)
            backend.fillNormal(a, seed: 1, tensorId: 1, stream: 0, scale: 1)
            backend.fillNormal(x, seed: 1, tensorId: 2, stream: 0, scale: 1)
            let t = backend.medianSeconds(repeats) { backend.matmul(c, a, transposeA: false, x, transposeB: false, alpha: 1, beta: 0) }
            gemmRate = 2 * Double(r * r * n) / t
        }
        return (forward, pass, peak, gemmRate)
    }

    /// The step context of a step on one fixed batch (`zotune memory`, `bench step`, `bench
    /// optimizers`): the same batch everywhere — DiZO's search minibatches, Zoop's per-sequence
    /// losses and lowrank-spsa's batched probe.
    public static func context(model: CausalLM, batch: TokenBatch, step: Int, lr: Float) -> StepContext {
        StepContext(step: step, runSeed: 1, lr: lr, loss: { try languageModelLoss(model, batch) },
                    searchLoss: { _ in try languageModelLoss(model, batch) },
                    scoreSamples: { try sequenceScore(model, batch) },
                    lowRankProbe: { probe, seed in try probe.probeLanguageModel(seed: seed, batch: batch) })
    }

    /// Median step time of `optimizer` (built from `config` by TrainingRun.makeOptimizer) over
    /// `repeats` steps of `context`. DiZO's searches come every K steps: its step
    /// time is the ordinary step's plus one search step's extra time over K (the search step is
    /// timed once, as step K − 1).
    public static func measure(_ optimizer: any ZOOptimizer, config: OptimizerConfig, model: CausalLM, batch: TokenBatch, repeats: Int, lr: Float,
                               baseline: Baseline) throws -> OptimizerTiming {
        let backend = model.backend
        func context(_ t: Int) -> StepContext { Self.context(model: model, batch: batch, step: t, lr: lr) }
        backend.ledger.resetPeaks()
        var t = 0
        var step = try backend.medianSeconds(repeats) {
            _ = try optimizer.step(context(t))
            t += 1
        }
        var searchStep: Double?
        if let o = config.options(DiZOOptions.self), o.interval > 0 {
            let s = try backend.medianSeconds(0) { _ = try optimizer.step(context(o.interval - 1)) }
            searchStep = s
            step += (s - step) / Double(o.interval)
        }
        return OptimizerTiming(optimizer: config.kind.rawValue, forwardsPerStep: optimizer.meanForwardsPerStep, passesPerStep: optimizer.passesPerStep,
                               stepSeconds: step, forwardSeconds: baseline.forward, passSeconds: baseline.pass, stateBytes: optimizer.stateBytes,
                               peakBytes: backend.ledger.snapshot.total.peak, inferencePeakBytes: baseline.inferencePeak,
                               matrixFlopsPerStep: optimizer.matrixFlopsPerStep, gemmFlopsPerSecond: baseline.gemmRate, searchStepSeconds: searchStep)
    }
}
