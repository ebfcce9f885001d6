import Foundation
import ZOTuneBackend

/// ZO-SGD-Sign (ZO-Bench `zo_sign_opt` with SGD; ZO-FAMILY.md §4.3): θ ← θ − η·sign(g)·z − ηλθ,
/// the sign of the scalar projected gradient (not element-wise). The step length is η‖z‖ whatever
/// |g|, so η is not comparable with ZO-SGD's. g = 0 (equal losses) gives no step.
/// The anchor's sweeps ran AdamW on sign(g)·z by accident (A4); this is the documented rule.
public struct ZOSignOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var weightDecay: Float

    public init(eps: Float = 1e-3, weightDecay: Float = 0) {
        self.eps = eps
        self.weightDecay = weightDecay
    }

    enum CodingKeys: String, CodingKey { case eps, weightDecay = "weight_decay" }
}

public final class ZOSign: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOSignOptions
    let backend: any Backend

    public init(set: TrainableSet, options: ZOSignOptions, backend: any Backend) {
        self.set = set
        self.options = options
        self.backend = backend
    }

    public var config: OptimizerConfig { .zoSign(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    public var passesPerStep: Double { 3 }
    public var stateBytes: Int { 0 }
    public func resetState() {}

    static func sign(_ g: Float) -> Float { g > 0 ? 1 : g < 0 ? -1 : 0 }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try twoSidedStep(t, runSeed: runSeed, lr: lr, eps: options.eps, set: set, backend: backend, loss: loss) { r in
            for e in set.entries {
                backend.restoreUpdate(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, restore: options.eps,
                                      step: lr * Self.sign(r.projectedGrad), decay: e.decays ? lr * options.weightDecay : 0)
            }
        }
    }

    public func replay(_ records: [ZORecord]) {
        let eps = options.eps
        for r in records {
            for e in set.entries {
                backend.replayStep(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, a1: eps, a2: -2 * eps, restore: eps,
                                   step: r.lr * Self.sign(r.projectedGrad), decay: e.decays ? r.lr * options.weightDecay : 0)
            }
        }
    }
}
