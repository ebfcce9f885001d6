import Foundation
import ZOTuneBackend

/// MeZO / ZO-SGD with n-SPSA (ALGORITHMS.md §3), in place: per direction, θ += εz → ℓ₊,
/// θ −= 2εz → ℓ₋, g = (ℓ₊ − ℓ₋)/2ε, then one fused pass restores θ and applies
/// θ −= (η/n)(g·z + λθ). One-sided: ℓ₀ once per step, θ += εz → ℓ₊, g = (ℓ₊ − ℓ₀)/ε.
/// Directions are applied one after another (each update before the next direction's forwards).
public struct MeZOOptions: Sendable, Equatable {
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
}

/// One direction of one step, as stored in the trajectory: enough to redo the update exactly.
public struct ZORecord: Sendable, Equatable {
    public var step: UInt32
    public var direction: UInt16
    public var seed: UInt64
    public var lr: Float
    public var projectedGrad: Float

    public init(step: UInt32, direction: UInt16, seed: UInt64, lr: Float, projectedGrad: Float) {
        self.step = step
        self.direction = direction
        self.seed = seed
        self.lr = lr
        self.projectedGrad = projectedGrad
    }
}

/// A loss that was NaN or infinite: the step is abandoned with θ restored.
public struct NonFiniteLoss: Error, CustomStringConvertible {
    public let step: Int
    public let value: Double
    public var description: String { "loss is \(value) at step \(step + 1): stopped; the run keeps the state of the last good step" }
}

public final class MeZO: @unchecked Sendable {
    public let set: TrainableSet
    public let options: MeZOOptions
    let backend: any Backend

    public init(set: TrainableSet, options: MeZOOptions, backend: any Backend) {
        self.set = set
        self.options = options
        self.backend = backend
    }

    func perturb(_ seed: UInt64, _ scale: Float) {
        for e in set.entries { backend.perturb(e.tensor, seed: seed, tensorId: e.tensorId, stream: 0, scale: scale) }
    }

    func restoreUpdate(_ seed: UInt64, restore: Float, lr: Float, g: Float) {
        let n = Float(options.directions)
        for e in set.entries {
            backend.restoreUpdate(e.tensor, seed: seed, tensorId: e.tensorId, stream: 0, restore: restore,
                                  step: lr / n * g, decay: e.decays ? lr / n * options.weightDecay : 0)
        }
    }

    /// Runs step t with learning rate `lr`; `loss` evaluates the minibatch at the current θ.
    /// Returns one record per direction and the mean of ℓ₊ and ℓ₋ (the step's loss).
    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> (records: [ZORecord], loss: Double) {
        let eps = options.eps
        var records: [ZORecord] = []
        var lossSum = 0.0
        let base = options.oneSided ? try loss() : 0
        if !base.isFinite { throw NonFiniteLoss(step: t, value: base) }
        for k in 0..<options.directions {
            let seed = stepSeed(runSeed: runSeed, step: t, direction: k)
            perturb(seed, eps)
            let lp = try loss()
            guard lp.isFinite else { restoreUpdate(seed, restore: -eps, lr: 0, g: 0); throw NonFiniteLoss(step: t, value: lp) }
            let g: Float
            if options.oneSided {
                g = Float((lp - base) / Double(eps))
                restoreUpdate(seed, restore: -eps, lr: lr, g: g)
                lossSum += base
            } else {
                perturb(seed, -2 * eps)
                let lm = try loss()
                guard lm.isFinite else { restoreUpdate(seed, restore: eps, lr: 0, g: 0); throw NonFiniteLoss(step: t, value: lm) }
                g = Float((lp - lm) / (2 * Double(eps)))
                restoreUpdate(seed, restore: eps, lr: lr, g: g)
                lossSum += (lp + lm) / 2
            }
            records.append(ZORecord(step: UInt32(t), direction: UInt16(k), seed: seed, lr: lr, projectedGrad: g))
        }
        return (records, lossSum / Double(options.directions))
    }

    /// Redoes recorded updates without forwards: one pass per record with the same roundings as
    /// training (zt_replay_step), so the result is bit-identical on the same device.
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
