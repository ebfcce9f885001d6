import Foundation
import ZOTuneBackend

/// HiZOO (Yanjun-Zhao/HiZOO; ZO-FAMILY.md §4.5): ZO-SGD preconditioned by a diagonal Hessian
/// estimate H (f32, initialised to 1). Per step, with u = ε·z/√H (H before the step):
/// ℓ₀ = L(θ), ℓ± = L(θ ± u), g = (ℓ₊ − ℓ₋)/2ε, Δℓ = ℓ₊ + ℓ₋ − 2ℓ₀;
/// H ← (1 − α)H + α·|Δℓ|/(2ε²)·H·z²; θ ← θ − η·g·z/√H − ηλθ with the new H (the code's order).
/// 3 forwards (the anchor's 4th only logs a loss); restore, H and θ in one fused pass.
/// α is explicit: the anchor's script default 0 makes HiZOO MeZO with an extra forward.
public struct HiZOOOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// α, the Hessian smoothing (EMA weight of the new estimate).
    public var hessianSmoothing: Float
    public var weightDecay: Float

    public init(eps: Float = 1e-3, hessianSmoothing: Float = 1e-8, weightDecay: Float = 0) {
        self.eps = eps
        self.hessianSmoothing = hessianSmoothing
        self.weightDecay = weightDecay
    }

    enum CodingKeys: String, CodingKey { case eps, hessianSmoothing = "hessian_smoothing", weightDecay = "weight_decay" }
}

extension HiZOOOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "hizoo", "HiZOO: diagonal-Hessian-preconditioned ZO-SGD (3 forwards)",
        flags: [.init("--hessian-smoothing", "hessian_smoothing", \Self.hessianSmoothing), .init("--weight-decay", "weight_decay", \Self.weightDecay)],
        defaults: { eps, _ in HiZOOOptions(eps: eps) }, make: { try HiZOO(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkWeightDecay(weightDecay, Self.self)
        try checkUnit(hessianSmoothing, "hessian_smoothing", Self.self)
    }
}

extension OptimizerKind { public static let hizoo = HiZOOOptions.spec.kind }
extension OptimizerConfig { public static func hizoo(_ o: HiZOOOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class HiZOO: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: HiZOOOptions
    let backend: any Backend
    /// The diagonal Hessian estimate, one f32 tensor per trainable tensor.
    let hessian: [Tensor]

    public init(set: TrainableSet, options: HiZOOOptions, backend: any Backend) throws {
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        hessian = try set.allocateState(backend, value: 1)
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// g and Δℓ = ℓ₊ + ℓ₋ − 2ℓ₀ (f32, as the update used it).
    public var recordFields: [String] { ["g", "curvature_diff"] }
    public var forwardsPerStep: Int { 3 }
    public var passesPerStep: Double { 3 }
    public var stateBytes: Int { hessian.reduce(0) { $0 + $1.bytes } }
    public func resetState() { fillState(hessian, 1, backend: backend) }

    func move(_ seed: UInt64, _ scale: Float) {
        for (e, h) in zip(set.entries, hessian) {
            backend.perturbHessian(e.tensor, h: h, seed: seed, tensorId: e.tensorId, stream: 0, scale: scale)
        }
    }

    func update(_ r: ZORecord, replay: Bool) {
        let eps = options.eps, alpha = Double(options.hessianSmoothing)
        var s = ZOUpdateScalars()
        if replay { (s.a1, s.a2) = (eps, -2 * eps) }
        s.restore = eps
        s.g = r.projectedGrad
        s.lr = r.lr
        s.curvature = Float(alpha * Double(abs(r.values[1])) / (2 * Double(eps) * Double(eps)))
        s.keep = Float(1 - alpha)
        let items = zip(set.entries, hessian).map { e, h in
            ZOStreamItem(e.tensor, state1: h, tensorId: e.tensorId, decay: e.decays ? r.lr * options.weightDecay : 0)
        }
        backend.zoUpdate(.hizoo, items, seed: r.seed, stream: 0, scalars: s)
    }

    /// Reports ℓ₀, the loss at θ before the update.
    public func step(_ c: StepContext) throws -> StepOutcome {
        let (t, runSeed, lr, loss) = (c.step, c.runSeed, c.lr, c.loss)
        let seed = stepSeed(runSeed: runSeed, step: t, direction: 0)
        let l0 = try loss()
        guard l0.isFinite else { throw NonFiniteLoss(step: t, value: l0) }
        let p = try twoSidedProbe(step: t, eps: options.eps, move: { move(seed, $0) }, loss: loss)
        let r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: lr,
                         values: [projectedGradient(p, eps: options.eps), Float(p.plus + p.minus - 2 * l0)])
        update(r, replay: false)
        return StepOutcome(records: [r], loss: l0)
    }

    public func replay(_ records: [ZORecord]) { for r in records { update(r, replay: true) } }
}
