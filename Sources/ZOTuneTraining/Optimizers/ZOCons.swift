import Foundation
import ZOTuneBackend

/// ZO-SGD-Cons (ZO-Bench `zo_conserv`; ZO-FAMILY.md §4.4): a ZO-SGD step taken only where it
/// helps. ℓ₀ = L(θ); ℓ± probes give g; Δ = η·g·z; ℓ₁ = L(θ − Δ), ℓ₂ = L(θ + Δ); keep the best
/// of θ, θ − Δ, θ + Δ with ZO-Bench's tie order (`choice`). 5 forwards; θ − Δ is reached by the
/// fused restore, θ + Δ and the final move by one perturb pass each (4 or 5 passes). The anchor's
/// sweeps ran AdamW on Δ by accident (A5); Δ here is the SGD step. No weight decay.
public struct ZOConsOptions: Sendable, Equatable, Codable {
    public var eps: Float

    public init(eps: Float = 1e-3) { self.eps = eps }
}

extension ZOConsOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "zo-cons", "conservative ZO-SGD: the best of θ, θ−Δ, θ+Δ (5 forwards)",
        flags: [], refuses: ["--weight-decay": "its moves are pure ±ηgz"],
        defaults: { eps, _ in ZOConsOptions(eps: eps) }, make: { ZOCons(set: $1, options: $0, backend: $2) })

    public func validate() throws {}
}

extension OptimizerKind { public static let zoCons = ZOConsOptions.spec.kind }
extension OptimizerConfig { public static func zoCons(_ o: ZOConsOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class ZOCons: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOConsOptions
    let backend: any Backend

    public init(set: TrainableSet, options: ZOConsOptions, backend: any Backend) {
        self.set = set
        self.options = options
        self.backend = backend
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// g and the chosen move c ∈ {−1, 0, +1}: θ ← θ + c·η·g·z.
    public var recordFields: [String] { ["g", "choice"] }
    public var forwardsPerStep: Int { 5 }
    public var passesPerStep: Double { 5 }
    public var stateBytes: Int { 0 }
    public func resetState() {}

    /// ZO-Bench's branches: if ℓ₁ > ℓ₀ then (ℓ₀ < ℓ₂ ? θ : θ + Δ) else (ℓ₁ < ℓ₂ ? θ − Δ : θ + Δ),
    /// i.e. the argmin of (ℓ₀, ℓ₁, ℓ₂) with ties going to θ + Δ, then θ − Δ. Returns c.
    public static func choice(l0: Double, l1: Double, l2: Double) -> Int {
        if l1 > l0 { return l0 < l2 ? 0 : 1 }
        return l1 < l2 ? -1 : 1
    }

    /// θ ← θ − Δ by the fused restore; replay first redoes the probes' two perturbations so the
    /// restore sees training's roundings.
    func moveToMinus(_ r: ZORecord, replay: Bool) {
        let eps = options.eps, step = r.lr * r.projectedGrad
        for e in set.entries {
            if replay {
                backend.replayStep(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, a1: eps, a2: -2 * eps, restore: eps, step: step, decay: 0)
            } else {
                backend.restoreUpdate(e.tensor, seed: r.seed, tensorId: e.tensorId, stream: 0, restore: eps, step: step, decay: 0)
            }
        }
    }

    /// From θ + Δ to the chosen point.
    func settle(_ r: ZORecord, choice: Int) {
        guard choice != 1 else { return }
        set.perturb(backend, seed: r.seed, scale: -Float(1 - choice) * r.lr * r.projectedGrad)
    }

    public func step(_ c: StepContext) throws -> StepOutcome {
        let (t, runSeed, lr, loss) = (c.step, c.runSeed, c.lr, c.loss)
        let seed = stepSeed(runSeed: runSeed, step: t, direction: 0)
        let l0 = try loss()
        guard l0.isFinite else { throw NonFiniteLoss(step: t, value: l0) }
        let p = try twoSidedProbe(step: t, eps: options.eps, move: { set.perturb(backend, seed: seed, scale: $0) }, loss: loss)
        var r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: lr, values: [projectedGradient(p, eps: options.eps), 0])
        let delta = lr * r.projectedGrad
        moveToMinus(r, replay: false)
        let l1 = try loss()
        guard l1.isFinite else { set.perturb(backend, seed: seed, scale: delta); throw NonFiniteLoss(step: t, value: l1) }
        set.perturb(backend, seed: seed, scale: 2 * delta)
        let l2 = try loss()
        guard l2.isFinite else { set.perturb(backend, seed: seed, scale: -delta); throw NonFiniteLoss(step: t, value: l2) }
        let c = Self.choice(l0: l0, l1: l1, l2: l2)
        settle(r, choice: c)
        r.values[1] = Float(c)
        return StepOutcome(records: [r], loss: c == 0 ? l0 : c < 0 ? l1 : l2)
    }

    public func replay(_ records: [ZORecord]) {
        for r in records {
            moveToMinus(r, replay: true)
            set.perturb(backend, seed: r.seed, scale: 2 * (r.lr * r.projectedGrad))
            settle(r, choice: Int(r.values[1]))
        }
    }
}
