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

extension ZOSignOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "zo-sign", "ZO-SGD on sign(g)·z", flags: [.init("--weight-decay", "weight_decay", \Self.weightDecay)],
        defaults: { eps, _ in ZOSignOptions(eps: eps) }, make: { ZOSign(set: $1, options: $0, backend: $2) })

    public func validate() throws { try checkWeightDecay(weightDecay, Self.self) }
}

extension OptimizerKind { public static let zoSign = ZOSignOptions.spec.kind }
extension OptimizerConfig { public static func zoSign(_ o: ZOSignOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class ZOSign: TwoSidedOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOSignOptions
    public let backend: any Backend

    public init(set: TrainableSet, options: ZOSignOptions, backend: any Backend) {
        self.set = set
        self.options = options
        self.backend = backend
    }

    static func sign(_ g: Float) -> Float { g > 0 ? 1 : g < 0 ? -1 : 0 }

    public func update(_ r: ZORecord, replay: Bool) {
        let eps = options.eps, step = r.lr * Self.sign(r.projectedGrad)
        for e in set.entries {
            let decay = e.decays ? r.lr * options.weightDecay : 0
            if replay {
                backend.replayStep(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, a1: eps, a2: -2 * eps, restore: eps, step: step, decay: decay)
            } else {
                backend.restoreUpdate(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, restore: eps, step: step, decay: decay)
            }
        }
    }
}
