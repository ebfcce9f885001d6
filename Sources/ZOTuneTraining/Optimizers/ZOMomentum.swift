import Foundation
import ZOTuneBackend

/// ZO-SGD-MMT (ZO-Bench `zo_sgd` with momentum; ZO-FAMILY.md §4.1): heavy-ball momentum on the
/// two-sided estimate ĝ = g·z, as torch.optim.SGD(momentum = μ, dampening 0):
/// m ← μ·m + ĝ (the first step gives m = ĝ), θ ← θ − η·m − ηλθ. m is f32, one per weight.
public struct ZOMomentumOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var momentum: Float
    public var weightDecay: Float

    public init(eps: Float = 1e-3, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.eps = eps
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    enum CodingKeys: String, CodingKey { case eps, momentum, weightDecay = "weight_decay" }
}

public final class ZOMomentum: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOMomentumOptions
    let backend: any Backend
    /// m, one f32 tensor per trainable tensor.
    let momentum: [Tensor]

    public init(set: TrainableSet, options: ZOMomentumOptions, backend: any Backend) throws {
        self.set = set
        self.options = options
        self.backend = backend
        momentum = try set.allocateState(backend)
    }

    public var config: OptimizerConfig { .zoSGDMomentum(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    public var passesPerStep: Double { 3 }
    public var stateBytes: Int { momentum.reduce(0) { $0 + $1.bytes } }
    public func resetState() { fillState(momentum, 0, backend: backend) }

    func update(_ r: ZORecord, replay: Bool) {
        var s = ZOUpdateScalars()
        if replay { (s.a1, s.a2) = (options.eps, -2 * options.eps) }
        s.restore = options.eps
        s.g = r.projectedGrad
        s.lr = r.lr
        s.beta1 = options.momentum
        let items = zip(set.entries, momentum).map { e, m in
            ZOStreamItem(e.tensor, state1: m, tensorId: e.tensorId, decay: e.decays ? r.lr * options.weightDecay : 0)
        }
        backend.zoUpdate(.momentum, items, seed: r.seed, stream: 0, scalars: s)
    }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try twoSidedStep(t, runSeed: runSeed, lr: lr, eps: options.eps, set: set, backend: backend, loss: loss) { update($0, replay: false) }
    }

    public func replay(_ records: [ZORecord]) { for r in records { update(r, replay: true) } }
}
