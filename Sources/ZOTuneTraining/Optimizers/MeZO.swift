import Foundation
import ZOTuneBackend

/// MeZO / ZO-SGD with n-SPSA (ALGORITHMS.md §3), in place: per direction, θ += εz → ℓ₊,
/// θ −= 2εz → ℓ₋, g = (ℓ₊ − ℓ₋)/2ε, then one fused pass restores θ and applies
/// θ −= (η/n)(g·z + λθ). One-sided: ℓ₀ once per step, θ += εz → ℓ₊, g = (ℓ₊ − ℓ₀)/ε.
/// Directions are applied one after another (each update before the next direction's forwards).
public struct MeZOOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var weightDecay: Float
    public var directions: Int
    public var oneSided: Bool

    public init(eps: Float = 1e-3, weightDecay: Float = 0, directions: Int = 1, oneSided: Bool = false) {
        self.eps = eps
        self.weightDecay = weightDecay
        self.directions = directions
        self.oneSided = oneSided
    }

    enum CodingKeys: String, CodingKey {
        case eps, weightDecay = "weight_decay", directions, oneSided = "one_sided"
    }
}

public final class MeZO: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: MeZOOptions
    let backend: any Backend

    public init(set: TrainableSet, options: MeZOOptions, backend: any Backend) {
        self.set = set
        self.options = options
        self.backend = backend
    }

    public var config: OptimizerConfig { .mezo(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { options.oneSided ? options.directions + 1 : 2 * options.directions }
    public var passesPerStep: Double { Double((options.oneSided ? 2 : 3) * options.directions) }
    public var stateBytes: Int { 0 }
    public func resetState() {}

    func restoreUpdate(_ seed: UInt64, restore: Float, lr: Float, g: Float) {
        let n = Float(options.directions)
        let items = set.entries.map { StreamItem($0.tensor, tensorId: $0.tensorId, decay: $0.decays ? lr / n * options.weightDecay : 0) }
        backend.restoreUpdate(items, seed: seed, stream: 0, restore: restore, step: lr / n * g)
    }

    /// Returns one record per direction and the mean of ℓ₊ and ℓ₋ (one-sided: ℓ₀).
    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        let eps = options.eps
        var records: [ZORecord] = []
        var lossSum = 0.0
        let base = options.oneSided ? try loss() : 0
        if !base.isFinite { throw NonFiniteLoss(step: t, value: base) }
        for k in 0..<options.directions {
            let seed = stepSeed(runSeed: runSeed, step: t, direction: k)
            let g: Float
            if options.oneSided {
                set.perturb(backend, seed: seed, scale: eps)
                let lp = try loss()
                guard lp.isFinite else { set.perturb(backend, seed: seed, scale: -eps); throw NonFiniteLoss(step: t, value: lp) }
                g = Float((lp - base) / Double(eps))
                restoreUpdate(seed, restore: -eps, lr: lr, g: g)
                lossSum += base
            } else {
                let p = try twoSidedProbe(step: t, eps: eps, move: { set.perturb(backend, seed: seed, scale: $0) }, loss: loss)
                g = projectedGradient(p, eps: eps)
                restoreUpdate(seed, restore: eps, lr: lr, g: g)
                lossSum += (p.plus + p.minus) / 2
            }
            records.append(ZORecord(step: UInt32(t), direction: UInt16(k), seed: seed, lr: lr, values: [g]))
        }
        return StepOutcome(records: records, loss: lossSum / Double(options.directions))
    }

    /// One pass per record with the same roundings as training (zt_replay_step).
    public func replay(_ records: [ZORecord]) {
        let eps = options.eps, n = Float(options.directions)
        let (a2, restore): (Float, Float) = options.oneSided ? (0, -eps) : (-2 * eps, eps)
        for r in records {
            for e in set.entries {
                backend.replayStep(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, a1: eps, a2: a2, restore: restore,
                                   step: r.lr / n * r.projectedGrad, decay: e.decays ? r.lr / n * options.weightDecay : 0)
            }
        }
    }
}
