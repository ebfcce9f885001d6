import Foundation
import ZOTuneBackend

/// ZO-Adam (ZO-Bench `zo_adam`; ZO-FAMILY.md §4.2): torch.optim.Adam on ĝ = g·z, one Adam step
/// per ZO step (t counts steps from 1): m ← lerp(m, ĝ, 1 − β₁), v ← β₂v + (1 − β₂)ĝ²,
/// θ ← θ − (η/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε_adam) − ηλθ (decoupled decay, as AdamW).
/// Both moments are f32 (fp16 v underflows: ZO-FAMILY.md §3.2).
public struct ZOAdamOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var beta1: Float
    public var beta2: Float
    public var adamEps: Float
    public var weightDecay: Float

    public init(eps: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, adamEps: Float = 1e-8, weightDecay: Float = 0) {
        self.eps = eps
        self.beta1 = beta1
        self.beta2 = beta2
        self.adamEps = adamEps
        self.weightDecay = weightDecay
    }

    enum CodingKeys: String, CodingKey { case eps, beta1, beta2, adamEps = "adam_eps", weightDecay = "weight_decay" }
}

extension ZOAdamOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "zo-adam", "Adam on the ZO estimate, f32 moments",
        flags: [.init("--beta1", "beta1", \Self.beta1), .init("--beta2", "beta2", \Self.beta2), .init("--adam-eps", "adam_eps", \Self.adamEps),
                .init("--weight-decay", "weight_decay", \Self.weightDecay)],
        defaults: { eps, _ in ZOAdamOptions(eps: eps) }, make: { try ZOAdam(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkWeightDecay(weightDecay, Self.self)
        try checkAdam(beta1: beta1, beta2: beta2, adamEps: adamEps, Self.self)
    }
}

/// Adam's β₁, β₂ in [0, 1) and its ε positive (ZO-Adam, Zoop's adam update).
func checkAdam<O: ZOOptimizerOptions>(beta1: Float, beta2: Float, adamEps: Float, _ type: O.Type) throws {
    try checkUnit(beta1, "beta1", O.self)
    try checkUnit(beta2, "beta2", O.self)
    guard adamEps > 0 && adamEps.isFinite else { throw OptimizerOptionError(O.self, "adam_eps", "must be positive (got \(adamEps))") }
}

extension OptimizerKind { public static let zoAdam = ZOAdamOptions.spec.kind }
extension OptimizerConfig { public static func zoAdam(_ o: ZOAdamOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class ZOAdam: TwoSidedOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOAdamOptions
    public let backend: any Backend
    let m: [Tensor], v: [Tensor]

    public init(set: TrainableSet, options: ZOAdamOptions, backend: any Backend) throws {
        self.set = set
        self.options = options
        self.backend = backend
        m = try set.allocateState(backend)
        v = try set.allocateState(backend)
    }

    public var buffers: [Tensor] { m + v }

    /// Bias corrections as torch computes them (Python floats, i.e. double) for Adam step t + 1.
    static func biasCorrections(step t: Int, lr: Float, options o: ZOAdamOptions) -> (stepSize: Float, bc2Sqrt: Float) {
        let n = Double(t + 1)
        let bc1 = 1 - pow(Double(o.beta1), n), bc2 = 1 - pow(Double(o.beta2), n)
        return (Float(Double(lr) / bc1), Float(bc2.squareRoot()))
    }

    public func update(_ r: ZORecord, replay: Bool) {
        var s = updateScalars(eps: options.eps, replay: replay)
        s.g = r.projectedGrad
        (s.lr, s.bc2Sqrt) = Self.biasCorrections(step: Int(r.step), lr: r.lr, options: options)
        s.beta1 = options.beta1
        s.beta2 = options.beta2
        s.adamEps = options.adamEps
        let items = set.entries.indices.map { k in
            ZOStreamItem(set.entries[k].tensor, state1: m[k], state2: v[k], tensorId: set.entries[k].tensorId,
                         decay: set.entries[k].decays ? r.lr * options.weightDecay : 0)
        }
        backend.zoUpdate(.adam, items, seed: r.seed, stream: 0, scalars: s)
    }
}
