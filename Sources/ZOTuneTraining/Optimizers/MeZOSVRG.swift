import Foundation
import ZOTuneBackend
import ZOTuneKernels

/// MeZO-SVRG (amazon-science/mezo_svrg; ZO-FRONTIER §5) with the control variate on a shared z.
/// Every `anchorEvery`-th step (t mod q = 0) is a full step: the anchor θ̄ ← θ, then
/// ḡ = mean over `anchorBatches` minibatches (the step's and search minibatches) of
/// (L(θ̄ + εz̄) − L(θ̄ − εz̄))/2ε, and θ ← θ̄ − η₁ḡz̄ (η₁ = anchorLRScale·η). The other steps draw z
/// and measure g₁ at θ and g₂ at θ̄ on the same minibatch along the same z:
///   θ ← θ − η((g₁ − g₂)z + ḡz̄),
/// whose noise is zzᵀ(∇(θ) − ∇(θ̄)) instead of MeZO's zzᵀ∇(θ) (released code: a fresh z per estimate
/// and an anchor that aliases the live weights, so g₂ is measured at θ and the variate is lost).
///
/// State: a copy of θ̄ (1× the trainable bytes, in θ's dtype). θ itself is never accumulated: it
/// is rebuilt every step as rnd(θ̄ + c̄z̄ + Σ_j c_j z_j) in one pass from the copy (the epoch's terms,
/// at most q), and probes are written the same way (θ ± εz = rnd(θ̄ + terms ± εz)), so neither the
/// anchor nor θ carries perturb/restore rounding. The copy-free "virtual anchor" cannot be exact:
/// a probe writes θ̄ + S ± εz over the only copy, and fl(fl(θ̄ + S + εz) − S − εz) ≠ θ̄ in general,
/// so θ̄ would drift by a rounding per step (docs/optimizers.md). No weight decay (none released).
public struct MeZOSVRGOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// q: a full (anchor) step every q steps.
    public var anchorEvery: Int
    /// Minibatches averaged for ḡ (the step's own plus search minibatches).
    public var anchorBatches: Int
    /// η₁/η: the full step's lr over the minibatch steps' (released grids: 1–100).
    public var anchorLRScale: Float

    public init(eps: Float = 1e-3, anchorEvery: Int = 2, anchorBatches: Int = 4, anchorLRScale: Float = 10) {
        self.eps = eps
        self.anchorEvery = anchorEvery
        self.anchorBatches = anchorBatches
        self.anchorLRScale = anchorLRScale
    }

    enum CodingKeys: String, CodingKey {
        case eps, anchorEvery = "anchor_every", anchorBatches = "anchor_batches", anchorLRScale = "anchor_lr_scale"
    }
}

extension MeZOSVRGOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "mezo-svrg", "MeZO-SVRG: a full-batch anchor every q steps, minibatch steps with a shared-z control variate (4 forwards)",
        flags: [.init("--anchor-every", "anchor_every", \Self.anchorEvery), .init("--anchor-batches", "anchor_batches", \Self.anchorBatches),
                .init("--anchor-lr-scale", "anchor_lr_scale", \Self.anchorLRScale)],
        refuses: ["--weight-decay": "no weight decay, as the released code"],
        defaults: { eps, _ in MeZOSVRGOptions(eps: eps) }, make: { try MeZOSVRG(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        guard anchorEvery >= 1 && anchorEvery < KernelBackend.maxSumTerms else {
            throw OptimizerOptionError(Self.self, "anchor_every", "must be in 1...\(KernelBackend.maxSumTerms - 1) (got \(anchorEvery))")
        }
        // Bounded so the search-minibatch index (step / anchor_every) · (anchor_batches − 1) cannot overflow.
        guard anchorBatches >= 1 && anchorBatches <= 65536 else {
            throw OptimizerOptionError(Self.self, "anchor_batches", "must be in 1...65536 (got \(anchorBatches))")
        }
        guard anchorLRScale > 0 && anchorLRScale.isFinite else {
            throw OptimizerOptionError(Self.self, "anchor_lr_scale", "must be positive (got \(anchorLRScale))")
        }
    }
}

public final class MeZOSVRG: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: MeZOSVRGOptions
    let backend: any Backend
    let kernels: KernelBackend
    /// θ̄, one copy per trainable tensor.
    let anchor: [Tensor]
    /// The epoch since the last full step: its z̄ (seed, ḡ, coefficient of z̄ so far) and the
    /// minibatch steps' terms (seed, −η(g₁ − g₂)); nil before the first full step.
    var epoch: (seed: UInt64, gBar: Float, barCoef: Double, terms: [SumTerm])?

    public init(set: TrainableSet, options: MeZOSVRGOptions, backend: any Backend) throws {
        guard let kernels = backend as? KernelBackend else { throw BackendError("mezo-svrg needs a kernel backend (cpu or cuda)") }
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        self.kernels = kernels
        anchor = try set.entries.map { try backend.allocate($0.tensor.shape, dtype: $0.tensor.dtype, tag: .optimizer) }
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// g (ḡ on a full step, g₁ otherwise), g at the anchor (g₂; 0 on a full step), and 1 on a full step.
    public var recordFields: [String] { ["g", "g_anchor", "full"] }
    /// A minibatch step: two probes at θ, two at θ̄.
    public var forwardsPerStep: Int { 4 }
    public var meanForwardsPerStep: Double {
        let q = Double(options.anchorEvery)
        return (2 * Double(options.anchorBatches) + 4 * (q - 1)) / q
    }
    /// Full: copy, two probes, rebuild; minibatch: four probes and a rebuild.
    public var passesPerStep: Double { (4 + 5 * Double(options.anchorEvery - 1)) / Double(options.anchorEvery) }
    public var stateBytes: Int { anchor.reduce(0) { $0 + $1.bytes } }
    public func resetState() { epoch = nil }

    /// θ (every tensor) ← rnd(θ̄ + the epoch's terms + extra).
    func write(_ extra: [SumTerm]) {
        var terms = extra
        if let e = epoch { terms = [SumTerm(seed: e.seed, stream: 0, coef: Float(e.barCoef))] + e.terms + extra }
        for (e, a) in zip(set.entries, anchor) {
            if terms.isEmpty { backend.copy(e.tensor, from: a) } else {
                kernels.streamSum(into: e.tensor, from: a, tensorId: e.tensorId, direction: .normal, terms: terms)
            }
        }
    }

    /// The state change of one record, and θ rebuilt (training and replay alike).
    func apply(_ r: ZORecord) {
        if r.values[2] != 0 {
            epoch = (r.seed, r.projectedGrad, -Double(options.anchorLRScale * r.lr) * Double(r.projectedGrad), [])
        } else if var e = epoch {
            e.barCoef -= Double(r.lr) * Double(e.gBar)
            e.terms.append(SumTerm(seed: r.seed, stream: 0, coef: -(r.lr * (r.values[0] - r.values[1]))))
            epoch = e
        }
        write([])
    }

    /// (ℓ₊, ℓ₋) at rnd(θ̄ + terms ± εz) of `loss`, then the buffer left at the last probe.
    func probe(_ seed: UInt64, terms extra: Bool, step t: Int, _ loss: () throws -> Double) throws -> (plus: Double, minus: Double) {
        let eps = options.eps
        let keep = epoch
        if !extra { epoch = nil }  // probe at θ̄ itself
        defer { epoch = keep }
        write([SumTerm(seed: seed, stream: 0, coef: eps)])
        let lp = try loss()
        write([SumTerm(seed: seed, stream: 0, coef: -eps)])
        let lm = try loss()
        return (lp, lm)
    }

    public func step(_ c: StepContext) throws -> StepOutcome {
        let t = c.step
        let seed = stepSeed(runSeed: c.runSeed, step: t, direction: 0)
        let full = t % options.anchorEvery == 0 || epoch == nil
        do {
            if full {
                for (e, a) in zip(set.entries, anchor) { backend.copy(a, from: e.tensor) }  // θ̄ ← θ, exact
                epoch = nil
                let first = (t / options.anchorEvery) * (options.anchorBatches - 1)
                var gSum = 0.0, lossSum = 0.0
                let eps = Double(options.eps)
                // The step's minibatch, then anchorBatches − 1 search minibatches (a function of t alone).
                var plus: [Double] = [], minus: [Double] = []
                write([SumTerm(seed: seed, stream: 0, coef: options.eps)])
                for j in 0..<options.anchorBatches { plus.append(try j == 0 ? c.loss() : c.searchLoss(first + j - 1)) }
                write([SumTerm(seed: seed, stream: 0, coef: -options.eps)])
                for j in 0..<options.anchorBatches { minus.append(try j == 0 ? c.loss() : c.searchLoss(first + j - 1)) }
                for (p, m) in zip(plus, minus) {
                    guard p.isFinite && m.isFinite else { write([]); throw NonFiniteLoss(step: t, value: p.isFinite ? m : p) }
                    gSum += (p - m) / (2 * eps)
                    lossSum += (p + m) / 2
                }
                let r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: c.lr,
                                 values: [Float(gSum / Double(options.anchorBatches)), 0, 1])
                apply(r)
                return StepOutcome(records: [r], loss: lossSum / Double(options.anchorBatches))
            }
            let p = try probe(seed, terms: true, step: t, c.loss)
            let q = try probe(seed, terms: false, step: t, c.loss)
            for l in [p.plus, p.minus, q.plus, q.minus] where !l.isFinite { write([]); throw NonFiniteLoss(step: t, value: l) }
            let r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: c.lr,
                             values: [projectedGradient(p, eps: options.eps), projectedGradient(q, eps: options.eps), 0])
            apply(r)
            return StepOutcome(records: [r], loss: (p.plus + p.minus) / 2)
        }
    }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try withoutActuallyEscaping(loss) { l in try step(StepContext(step: t, runSeed: runSeed, lr: lr, loss: l)) }
    }

    /// Full records re-take the anchor from θ, then every record rebuilds θ from it: no forwards,
    /// and no probe pass (training's probes never persist either).
    public func replay(_ records: [ZORecord]) {
        for r in records {
            if r.values[2] != 0 { for (e, a) in zip(set.entries, anchor) { backend.copy(a, from: e.tensor) } }
            apply(r)
        }
    }
}
