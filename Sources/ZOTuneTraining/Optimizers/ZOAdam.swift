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

public final class ZOAdam: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOAdamOptions
    let backend: any Backend
    let m: [Tensor], v: [Tensor]

    public init(set: TrainableSet, options: ZOAdamOptions, backend: any Backend) throws {
        self.set = set
        self.options = options
        self.backend = backend
        m = try set.allocateState(backend)
        v = try set.allocateState(backend)
    }

    public var config: OptimizerConfig { .zoAdam(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    public var passesPerStep: Double { 3 }
    public var stateBytes: Int { (m + v).reduce(0) { $0 + $1.bytes } }
    public func resetState() { fillState(m + v, 0, backend: backend) }

    /// Bias corrections as torch computes them (Python floats, i.e. double) for Adam step t + 1.
    static func biasCorrections(step t: Int, lr: Float, options o: ZOAdamOptions) -> (stepSize: Float, bc2Sqrt: Float) {
        let n = Double(t + 1)
        let bc1 = 1 - pow(Double(o.beta1), n), bc2 = 1 - pow(Double(o.beta2), n)
        return (Float(Double(lr) / bc1), Float(bc2.squareRoot()))
    }

    func update(_ r: ZORecord, replay: Bool) {
        var s = ZOUpdateScalars()
        if replay { (s.a1, s.a2) = (options.eps, -2 * options.eps) }
        s.restore = options.eps
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

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try twoSidedStep(t, runSeed: runSeed, lr: lr, eps: options.eps, set: set, backend: backend, loss: loss) { update($0, replay: false) }
    }

    public func replay(_ records: [ZORecord]) { for r in records { update(r, replay: true) } }
}
