import Foundation
import ZOTuneBackend
import ZOTuneKernels

/// Sparse MeZO (arXiv 2402.15751; ZO-FRONTIER §6): MeZO that perturbs and updates only the
/// entries with |θ| ≤ h, h per tensor the k-th smallest |θ| with k = round((1 − sparsity)·n)
/// ("sparsity" is the fraction left out; 0.8 moves the 20 % smallest magnitudes). Per step, from
/// the clean θ: h (an exact selection, so every device gets the same value), then the mask
/// m = |θ| ≤ h written by the first probe pass; θ + εm⊙z → ℓ₊, θ − εm⊙z → ℓ₋ (the second pass and
/// the restore read the stored mask, never a mask of the perturbed θ, which would flip entries near
/// h and leave θ unrestored), g = (ℓ₊ − ℓ₋)/2ε, θ ← θ − η g m⊙z. Where the paper and code differ:
/// the paper's GetMask compares the signed θ ≤ h (every negative weight); this is |θ|, as its text
/// says. h is recomputed every step (the paper's dynamic mask; its refresh interval is unspecified).
/// No weight decay. Replay recomputes h and the mask from the replayed θ: one pass per tensor.
public struct SparseMeZOOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// The fraction of each tensor left out (0 ≤ s < 1).
    public var sparsity: Double

    public init(eps: Float = 1e-3, sparsity: Double = 0.8) {
        self.eps = eps
        self.sparsity = sparsity
    }
}

extension SparseMeZOOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "sparse-mezo", "Sparse MeZO: MeZO on the entries with |θ| at most a per-tensor percentile of the clean θ (2 forwards)",
        flags: [.init("--sparsity", "sparsity", \Self.sparsity)],
        refuses: ["--weight-decay": "no weight decay: the unmasked entries stay frozen"],
        defaults: { eps, _ in SparseMeZOOptions(eps: eps) }, make: { try SparseMeZO(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        guard sparsity >= 0 && sparsity < 1 else {
            throw OptimizerOptionError(Self.self, "sparsity", "must be in [0, 1) (got \(sparsity)): it is the fraction of each tensor left out")
        }
    }
}

public final class SparseMeZO: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: SparseMeZOOptions
    let backend: any Backend
    let kernels: KernelBackend
    /// The step's mask, one byte per element of each tensor.
    let masks: [Tensor]

    public init(set: TrainableSet, options: SparseMeZOOptions, backend: any Backend) throws {
        guard let kernels = backend as? KernelBackend else { throw BackendError("sparse-mezo needs a kernel backend (cpu or cuda)") }
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        self.kernels = kernels
        masks = try set.entries.map { try backend.allocate([$0.tensor.count], dtype: .u8, tag: .optimizer) }
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    /// Three masked passes and a selection (read of θ) per tensor.
    public var passesPerStep: Double { 3 }
    public var stateBytes: Int { masks.reduce(0) { $0 + $1.bytes } }
    public func resetState() {}

    /// Entries kept out of n: round((1 − s)·n), at least 1.
    static func kept(_ n: Int, sparsity: Double) -> Int { max(1, Int(((1 - sparsity) * Double(n)).rounded())) }

    /// h of every tensor, from θ as it is now (the clean θ).
    func thresholds() -> [Float] {
        set.entries.map { kernels.kthAbs($0.tensor, k: Self.kept($0.tensor.count, sparsity: options.sparsity)) }
    }

    func pass(_ op: MaskedOp, _ seed: UInt64, _ h: [Float], a: Float = 0, restore: Float = 0, step: Float = 0) {
        for (i, e) in set.entries.enumerated() {
            kernels.maskedStream(op, e.tensor, mask: masks[i], seed: seed, tensorId: e.tensorId, stream: 0, threshold: h[i],
                                 a: a, restore: restore, step: step)
        }
    }

    public func step(_ c: StepContext) throws -> StepOutcome {
        let (t, eps) = (c.step, options.eps)
        let seed = stepSeed(runSeed: c.runSeed, step: t, direction: 0)
        let h = thresholds()
        pass(.setPerturb, seed, h, a: eps)
        let lp = try c.loss()
        guard lp.isFinite else { pass(.perturb, seed, h, a: -eps); throw NonFiniteLoss(step: t, value: lp) }
        pass(.perturb, seed, h, a: -2 * eps)
        let lm = try c.loss()
        guard lm.isFinite else { pass(.perturb, seed, h, a: eps); throw NonFiniteLoss(step: t, value: lm) }
        let r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: c.lr, values: [projectedGradient((lp, lm), eps: eps)])
        pass(.update, seed, h, restore: eps, step: r.lr * r.projectedGrad)
        return StepOutcome(records: [r], loss: (lp + lm) / 2)
    }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try withoutActuallyEscaping(loss) { l in try step(StepContext(step: t, runSeed: runSeed, lr: lr, loss: l)) }
    }

    public func replay(_ records: [ZORecord]) {
        let eps = options.eps
        for r in records {
            let h = thresholds()
            for (i, e) in set.entries.enumerated() {
                kernels.maskedStream(.replay, e.tensor, mask: nil, seed: r.seed, tensorId: e.tensorId, stream: 0, threshold: h[i],
                                     a1: eps, a2: -2 * eps, restore: eps, step: r.lr * r.projectedGrad)
            }
        }
    }
}
