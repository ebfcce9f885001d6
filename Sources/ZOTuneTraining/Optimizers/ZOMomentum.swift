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

extension ZOMomentumOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "zo-sgd-mmt", "ZO-SGD with heavy-ball momentum",
        flags: [.init("--momentum", "momentum", \Self.momentum), .init("--weight-decay", "weight_decay", \Self.weightDecay)],
        defaults: { eps, _ in ZOMomentumOptions(eps: eps) }, make: { try ZOMomentum(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkWeightDecay(weightDecay, Self.self)
        try checkUnit(momentum, "momentum", Self.self)
    }
}

extension OptimizerKind { public static let zoSGDMomentum = ZOMomentumOptions.spec.kind }
extension OptimizerConfig { public static func zoSGDMomentum(_ o: ZOMomentumOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class ZOMomentum: TwoSidedOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOMomentumOptions
    public let backend: any Backend
    /// m, one f32 tensor per trainable tensor.
    let momentum: [Tensor]

    public init(set: TrainableSet, options: ZOMomentumOptions, backend: any Backend) throws {
        self.set = set
        self.options = options
        self.backend = backend
        momentum = try set.allocateState(backend)
    }

    public var buffers: [Tensor] { momentum }

    public func update(_ r: ZORecord, replay: Bool) {
        var s = updateScalars(eps: options.eps, replay: replay)
        s.g = r.projectedGrad
        s.lr = r.lr
        s.beta1 = options.momentum
        let items = zip(set.entries, momentum).map { e, m in
            ZOStreamItem(e.tensor, state1: m, tensorId: e.tensorId, decay: e.decays ? r.lr * options.weightDecay : 0)
        }
        backend.zoUpdate(.momentum, items, seed: r.seed, stream: 0, scalars: s)
    }
}
