import Foundation
import ZOTuneBackend
import ZOTuneModels

/// One optimizer's step on a fixed batch (LM loss over all positions), against the forward and
/// the pass over θ measured in the same run: the step should cost about
/// forwards × forward + passes × pass, and its ledger peak should stay at the inference figure
/// plus the optimizer's state.
public struct OptimizerTiming: Sendable {
    public let optimizer: String
    public let forwardsPerStep: Int
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

    /// forwards × forward time + passes × pass time + NS FLOPs at the measured GEMM rate.
    public var predictedSeconds: Double {
        Double(forwardsPerStep) * forwardSeconds + passesPerStep * passSeconds + matrixFlopsPerStep / gemmFlopsPerSecond
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
                "matrix_tflop_per_step": r(matrixFlopsPerStep / 1e12), "gemm_gflops": r(gemmFlopsPerSecond / 1e9)]
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

    /// Median step time of `config` over `repeats` steps, its state allocated for the measurement
    /// and released after it.
    public static func measure(_ config: OptimizerConfig, model: CausalLM, batch: TokenBatch, set: TrainableSet, repeats: Int, lr: Float,
                               baseline: Baseline) throws -> OptimizerTiming {
        let backend = model.backend
        let optimizer = try config.make(set: set, backend: backend)
        backend.ledger.resetPeaks()
        var t = 0
        let step = try backend.medianSeconds(repeats) {
            _ = try optimizer.step(t, runSeed: 1, lr: lr) { try languageModelLoss(model, batch) }
            t += 1
        }
        return OptimizerTiming(optimizer: config.kind.rawValue, forwardsPerStep: optimizer.forwardsPerStep, passesPerStep: optimizer.passesPerStep,
                               stepSeconds: step, forwardSeconds: baseline.forward, passSeconds: baseline.pass, stateBytes: optimizer.stateBytes,
                               peakBytes: backend.ledger.snapshot.total.peak, inferencePeakBytes: baseline.inferencePeak,
                               matrixFlopsPerStep: optimizer.matrixFlopsPerStep, gemmFlopsPerSecond: baseline.gemmRate)
    }
}
