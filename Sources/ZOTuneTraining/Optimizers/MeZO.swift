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

extension MeZOOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "mezo", "ZO-SGD with n-SPSA, in place (MeZO)",
        flags: [.init("--directions", "directions", \Self.directions), .init("--one-sided", "one_sided", \Self.oneSided),
                .init("--weight-decay", "weight_decay", \Self.weightDecay)],
        defaults: { eps, _ in MeZOOptions(eps: eps) }, make: { MeZO(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkWeightDecay(weightDecay, Self.self)
        guard directions >= 1 else { throw OptimizerOptionError(Self.self, "directions", "must be at least 1") }
        // Each direction costs forwards; beyond a million a step never ends (and 2n forwards
        // overflow a count far before Int.max).
        guard directions <= 1_000_000 else { throw OptimizerOptionError(Self.self, "directions", "must be at most 1000000 (got \(directions))") }
    }
}

extension OptimizerKind { public static let mezo = MeZOOptions.spec.kind }
extension OptimizerConfig { public static func mezo(_ o: MeZOOptions) -> OptimizerConfig { OptimizerConfig(o) } }

/// Decoupled weight decay λ: 0 or positive.
func checkWeightDecay<O: ZOOptimizerOptions>(_ lambda: Float, _ type: O.Type) throws {
    guard lambda >= 0 && lambda.isFinite else { throw OptimizerOptionError(O.self, "weight_decay", "must be 0 or positive (got \(lambda))") }
}

/// A probability-like factor (momentum, β): in [0, 1).
func checkUnit<O: ZOOptimizerOptions>(_ x: Float, _ key: String, _ type: O.Type) throws {
    guard x >= 0 && x < 1 else { throw OptimizerOptionError(O.self, key, "must be in [0, 1)") }
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

    public var config: OptimizerConfig { OptimizerConfig(options) }
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
    public func step(_ c: StepContext) throws -> StepOutcome {
        let (t, runSeed, lr, loss) = (c.step, c.runSeed, c.lr, c.loss)
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
