import Foundation
import ZOTuneBackend

/// Which ZO-Jaguar SignSGD runs (ZO-FAMILY.md §4.6: three objects carry the name).
public enum JaguarVariant: String, Sendable, Codable, CaseIterable {
    /// The final paper's Alg. 1, on coordinate blocks: probe θ ± τ·s on the selected entries
    /// (Rademacher s), ĝ = (ℓ₊ − ℓ₋)/2τ, memory m ← β·m + (1 − β)·ĝ·s on the selection only,
    /// θ ← θ − η·sign(m) on every entry. With one entry selected this is the paper's step.
    case paper
    /// The released code (`zo_jaguar_step`): probe θ ± τ on the selection (all +1),
    /// ρ = sign(ℓ₊ − ℓ₋), gradient G = ρτ (× (1 − β) with smoothing) on the selection and 0
    /// elsewhere, rebuilt every step, then SGD momentum: buf ← μ·buf + G, θ ← θ − η·buf.
    case released
}

/// ZO-Jaguar SignSGD. Each step probes every tensor at once on a block of its entries: k_rows ×
/// k_cols crossings of `fraction` of its rows and of its columns (at least one of each; 1-D
/// tensors are one row), drawn from the seeded stream (zt_jaguar.h). The default 0.1 is the
/// released code's n//10 per dimension, ≈1 % of a matrix. Defaults τ = 1e-3, β = 1e-2 are the
/// paper's chosen values (the code's τ = 1e-6 is below the f16 ulp of most weights: ρ = 0).
/// State: m (paper) or the SGD buffer (released), f32, one per weight.
public struct JaguarSignOptions: Sendable, Equatable, Codable {
    /// τ, the probe size.
    public var eps: Float
    public var beta: Float
    public var fraction: Double
    public var variant: JaguarVariant
    /// released: SGD momentum μ.
    public var momentum: Float
    /// released: `zo_use_smoothing` (G scaled by 1 − β).
    public var smoothing: Bool

    public init(eps: Float = 1e-3, beta: Float = 1e-2, fraction: Double = 0.1, variant: JaguarVariant = .paper,
                momentum: Float = 0.9, smoothing: Bool = false) {
        self.eps = eps
        self.beta = beta
        self.fraction = fraction
        self.variant = variant
        self.momentum = momentum
        self.smoothing = smoothing
    }

    enum CodingKeys: String, CodingKey { case eps, beta, fraction = "block_fraction", variant, momentum, smoothing }
}

func checkJaguarOptions(_ name: String, beta: Float, fraction: Double) throws {
    guard beta >= 0 && beta < 1 else { throw BackendError("\(name): β must be in [0, 1) (got \(beta))") }
    guard fraction > 0 && fraction <= 1 else { throw BackendError("\(name): the block fraction must be in (0, 1] (got \(fraction))") }
}

/// The step shared by the Jaguar optimizers: θ ± τ·s on every tensor's block → ĝ, recorded, then
/// `update`. The step loss is (ℓ₊ + ℓ₋)/2.
func jaguarStep(_ t: Int, runSeed: UInt64, lr: Float, eps: Float, set: TrainableSet, selections: [JaguarSelection],
                backend: any Backend, loss: () throws -> Double, update: (ZORecord) -> Void) throws -> StepOutcome {
    let seed = stepSeed(runSeed: runSeed, step: t, direction: 0)
    let p = try twoSidedProbe(step: t, eps: eps, move: { a in
        for (e, sel) in zip(set.entries, selections) { backend.jaguarProbe(e.tensor, sel, seed: seed, tensorId: e.tensorId, scale: a) }
    }, loss: loss)
    let r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: lr, values: [projectedGradient(p, eps: eps)])
    update(r)
    return StepOutcome(records: [r], loss: (p.plus + p.minus) / 2)
}

public final class JaguarSign: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: JaguarSignOptions
    let backend: any Backend
    let selections: [JaguarSelection]
    /// m (paper) or the SGD buffer (released).
    let state: [Tensor]

    public init(set: TrainableSet, options: JaguarSignOptions, backend: any Backend) throws {
        try checkJaguarOptions("ZO-Jaguar", beta: options.beta, fraction: options.fraction)
        self.set = set
        self.options = options
        self.backend = backend
        selections = set.entries.map { JaguarSelection(shape: $0.tensor.shape, fraction: options.fraction, signs: options.variant == .paper) }
        state = try set.allocateState(backend)
    }

    public var config: OptimizerConfig { .jaguarSign(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    /// Two sparse probes (≈ fraction² of θ) and one dense update pass without z.
    public var passesPerStep: Double { 1 + 2 * options.fraction * options.fraction }
    public var stateBytes: Int { state.reduce(0) { $0 + $1.bytes } }
    public func resetState() { fillState(state, 0, backend: backend) }

    func update(_ r: ZORecord, replay: Bool) {
        var s = JaguarScalars()
        if replay { (s.a1, s.a2) = (options.eps, -2 * options.eps) }
        s.restore = options.eps
        s.lr = r.lr
        s.beta = options.beta
        let kind: JaguarKind
        switch options.variant {
        case .paper:
            kind = .sign
            s.g = r.projectedGrad
        case .released:
            kind = .sgd
            let rho: Float = r.projectedGrad > 0 ? 1 : r.projectedGrad < 0 ? -1 : 0
            s.g = rho * options.eps * (options.smoothing ? 1 - options.beta : 1)
            s.momentum = options.momentum
        }
        for (i, e) in set.entries.enumerated() {
            backend.jaguarUpdate(kind, e.tensor, state: state[i], selections[i], seed: r.seed, tensorId: e.tensorId, scalars: s)
        }
    }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try jaguarStep(t, runSeed: runSeed, lr: lr, eps: options.eps, set: set, selections: selections, backend: backend, loss: loss) {
            update($0, replay: false)
        }
    }

    public func replay(_ records: [ZORecord]) { for r in records { update(r, replay: true) } }
}

/// Jaguar-Muon (paper Alg. 2; no public code; ZO-FAMILY.md §4.7), on the blocks of ZO-Jaguar:
/// the paper variant's probe and ĝ; for each hidden matrix a memory M updated on the selection
/// only, M_sel ← β·M_sel + (1 − β)·ĝ·s, and W ← W − η·NS(M) with the cubic NS, K = 10. With
/// `orthogonalizeEvery` k > 1, NS(M) is recomputed on steps t ≡ 0 (mod k) and the cached O
/// applied in between: NS cost ÷ k for one more f32 copy of every matrix. Other tensors take the
/// paper's ZO-Jaguar SignSGD step at η·`otherLRRatio`. State: M / m (1× θ) + the O cache.
public struct JaguarMuonOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var beta: Float
    public var fraction: Double
    public var nsSteps: Int
    public var polynomial: NewtonSchulz
    public var orthogonalizeEvery: Int
    public var otherLRRatio: Float

    public init(eps: Float = 1e-3, beta: Float = 1e-2, fraction: Double = 0.1, nsSteps: Int = 10, polynomial: NewtonSchulz = .cubic,
                orthogonalizeEvery: Int = 1, otherLRRatio: Float = 0.01) {
        self.eps = eps
        self.beta = beta
        self.fraction = fraction
        self.nsSteps = nsSteps
        self.polynomial = polynomial
        self.orthogonalizeEvery = orthogonalizeEvery
        self.otherLRRatio = otherLRRatio
    }

    enum CodingKeys: String, CodingKey {
        case eps, beta, fraction = "block_fraction", nsSteps = "ns_steps", polynomial = "ns_polynomial"
        case orthogonalizeEvery = "orthogonalize_every", otherLRRatio = "other_lr_ratio"
    }
}

public final class JaguarMuon: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: JaguarMuonOptions
    let backend: any Backend
    let selections: [JaguarSelection]
    /// M (hidden matrices) or m (the others), f32.
    let memory: [Tensor]
    /// NS(M) kept between orthogonalisations (orthogonalizeEvery > 1; nil for other tensors).
    let cache: [Tensor?]
    let ns: NSWorkspace

    public init(set: TrainableSet, options: JaguarMuonOptions, backend: any Backend) throws {
        try checkJaguarOptions("Jaguar-Muon", beta: options.beta, fraction: options.fraction)
        try checkMatrixOptions("Jaguar-Muon", nsSteps: options.nsSteps, otherLRRatio: options.otherLRRatio)
        guard options.orthogonalizeEvery >= 1 else {
            throw BackendError("Jaguar-Muon: orthogonalize every k steps needs k ≥ 1 (got \(options.orthogonalizeEvery))")
        }
        self.set = set
        self.options = options
        self.backend = backend
        selections = set.entries.map { JaguarSelection(shape: $0.tensor.shape, fraction: options.fraction, signs: true) }
        memory = try set.allocateState(backend)
        cache = try set.entries.map { e in
            options.orthogonalizeEvery > 1 && e.isHiddenMatrix ? try backend.allocate(e.tensor.shape, dtype: .f32, tag: .optimizer) : nil
        }
        ns = try NSWorkspace(matrices: set.entries.filter(\.isHiddenMatrix), polynomial: options.polynomial,
                             steps: options.nsSteps, backend: backend)
    }

    public var config: OptimizerConfig { .jaguarMuon(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    /// Two sparse probes, the sparse memory pass and one dense apply pass (no z anywhere).
    public var passesPerStep: Double { 1 + 3 * options.fraction * options.fraction }
    public var stateBytes: Int { memory.reduce(0) { $0 + $1.bytes } + cache.reduce(0) { $0 + ($1?.bytes ?? 0) } }
    /// NS of every matrix every k-th step: the average per step.
    public var matrixFlopsPerStep: Double {
        NSWorkspace.flops(set.entries.filter(\.isHiddenMatrix), options.polynomial, steps: options.nsSteps) / Double(options.orthogonalizeEvery)
    }
    public func resetState() {
        fillState(memory, 0, backend: backend)
        fillState(cache.compactMap { $0 }, 0, backend: backend)
    }

    func update(_ r: ZORecord, replay: Bool) {
        var s = JaguarScalars()
        if replay { (s.a1, s.a2) = (options.eps, -2 * options.eps) }
        s.restore = options.eps
        s.g = r.projectedGrad
        s.beta = options.beta
        let orthogonalize = Int(r.step) % options.orthogonalizeEvery == 0
        for (i, e) in set.entries.enumerated() {
            guard e.isHiddenMatrix else {
                s.lr = r.lr * options.otherLRRatio
                backend.jaguarUpdate(.sign, e.tensor, state: memory[i], selections[i], seed: r.seed, tensorId: e.tensorId, scalars: s)
                continue
            }
            backend.jaguarUpdate(.memory, e.tensor, state: memory[i], selections[i], seed: r.seed, tensorId: e.tensorId, scalars: s)
            let o = cache[i] ?? ns.direction(for: e)
            if orthogonalize { ns.orthogonalize(memory[i].reshaped(e.tensor.shape), into: o) }
            backend.addScaled(e.tensor, o, alpha: -r.lr)
        }
    }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try jaguarStep(t, runSeed: runSeed, lr: lr, eps: options.eps, set: set, selections: selections, backend: backend, loss: loss) {
            update($0, replay: false)
        }
    }

    public func replay(_ records: [ZORecord]) { for r in records { update(r, replay: true) } }
}
