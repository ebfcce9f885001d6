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

extension JaguarSignOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "jaguar-sign", "ZO-Jaguar SignSGD: coordinate blocks, sign of a block memory",
        flags: [.init("--momentum", "momentum", \Self.momentum, only: released), .init("--beta", "beta", \Self.beta),
                .init("--block-fraction", "block_fraction", \Self.fraction), .init("--jaguar-variant", "variant", \Self.variant),
                .init("--smoothing", "smoothing", \Self.smoothing, only: released)],
        refuses: ["--weight-decay": "the released code has none"],
        defaults: { eps, _ in JaguarSignOptions(eps: eps) }, make: { try JaguarSign(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkUnit(momentum, "momentum", Self.self)
        try checkJaguarOptions(beta: beta, fraction: fraction, Self.self)
    }

    /// The paper variant has no momentum and no smoothing (they stay in the header, unused).
    static let released: (String, @Sendable (Self) -> Bool) = ("--jaguar-variant released", { $0.variant == .released })
}

extension OptimizerKind { public static let jaguarSign = JaguarSignOptions.spec.kind }
extension OptimizerConfig { public static func jaguarSign(_ o: JaguarSignOptions) -> OptimizerConfig { OptimizerConfig(o) } }

func checkJaguarOptions<O: ZOOptimizerOptions>(beta: Float, fraction: Double, _ type: O.Type) throws {
    try checkUnit(beta, "beta", O.self)
    guard fraction > 0 && fraction <= 1 else { throw OptimizerOptionError(O.self, "block_fraction", "must be in (0, 1] (got \(fraction))") }
}

/// The Jaguar probe: θ ± τ·s on every tensor's block.
func jaguarProbe(_ set: TrainableSet, _ selections: [JaguarSelection], backend: any Backend, seed: UInt64, scale: Float) {
    for (e, sel) in zip(set.entries, selections) { backend.jaguarProbe(e.tensor, sel, seed: seed, tensorId: e.tensorId, scale: scale) }
}

/// The scalars of a Jaguar update: probe replay moves when replaying, the restore τ.
func jaguarScalars(eps: Float, replay: Bool) -> JaguarScalars {
    var s = JaguarScalars()
    if replay { (s.a1, s.a2) = (eps, -2 * eps) }
    s.restore = eps
    return s
}

public final class JaguarSign: TwoSidedOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: JaguarSignOptions
    public let backend: any Backend
    let selections: [JaguarSelection]
    /// m (paper) or the SGD buffer (released).
    let state: [Tensor]

    public init(set: TrainableSet, options: JaguarSignOptions, backend: any Backend) throws {
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        selections = set.entries.map { JaguarSelection(shape: $0.tensor.shape, fraction: options.fraction, signs: options.variant == .paper) }
        state = try set.allocateState(backend)
    }

    /// Two sparse probes (≈ fraction² of θ) and one dense update pass without z.
    public var passesPerStep: Double { 1 + 2 * options.fraction * options.fraction }
    public var buffers: [Tensor] { state }
    public func probe(seed: UInt64, scale: Float) { jaguarProbe(set, selections, backend: backend, seed: seed, scale: scale) }

    public func update(_ r: ZORecord, replay: Bool) {
        var s = jaguarScalars(eps: options.eps, replay: replay)
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

extension JaguarMuonOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "jaguar-muon", "Jaguar-Muon: block memory per matrix, orthogonalised by NS",
        flags: [.init("--beta", "beta", \Self.beta), .init("--block-fraction", "block_fraction", \Self.fraction),
                .init("--ns-steps", "ns_steps", \Self.nsSteps), .init("--ns-polynomial", "ns_polynomial", \Self.polynomial),
                .init("--other-lr-ratio", "other_lr_ratio", \Self.otherLRRatio), .init("--orthogonalize-every", "orthogonalize_every", \Self.orthogonalizeEvery)],
        refuses: ["--weight-decay": "the released code has none"],
        defaults: { eps, _ in JaguarMuonOptions(eps: eps) }, make: { try JaguarMuon(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkJaguarOptions(beta: beta, fraction: fraction, Self.self)
        try checkMatrixOptions(nsSteps: nsSteps, otherLRRatio: otherLRRatio, Self.self)
        guard orthogonalizeEvery >= 1 else { throw OptimizerOptionError(Self.self, "orthogonalize_every", "must be at least 1 (got \(orthogonalizeEvery))") }
    }
}

extension OptimizerKind { public static let jaguarMuon = JaguarMuonOptions.spec.kind }
extension OptimizerConfig { public static func jaguarMuon(_ o: JaguarMuonOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class JaguarMuon: TwoSidedOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: JaguarMuonOptions
    public let backend: any Backend
    let selections: [JaguarSelection]
    /// M (hidden matrices) or m (the others), f32.
    let memory: [Tensor]
    /// NS(M) kept between orthogonalisations (orthogonalizeEvery > 1; nil for other tensors).
    let cache: [Tensor?]
    let ns: NSWorkspace

    public init(set: TrainableSet, options: JaguarMuonOptions, backend: any Backend) throws {
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        selections = set.entries.map { JaguarSelection(shape: $0.tensor.shape, fraction: options.fraction, signs: true) }
        memory = try set.allocateState(backend)
        cache = try set.entries.map { e in
            options.orthogonalizeEvery > 1 && e.isHiddenMatrix ? try backend.allocate(e.tensor.shape, dtype: .f32, tag: .optimizer) : nil
        }
        ns = try NSWorkspace(entries: set.entries, polynomial: options.polynomial, steps: options.nsSteps, backend: backend)
    }

    /// Two sparse probes, the sparse memory pass and one dense apply pass (no z anywhere).
    public var passesPerStep: Double { 1 + 3 * options.fraction * options.fraction }
    public var buffers: [Tensor] { memory + cache.compactMap { $0 } }
    /// NS of every matrix every k-th step: the average per step.
    public var matrixFlopsPerStep: Double {
        NSWorkspace.flops(set.entries.filter(\.isHiddenMatrix), options.polynomial, steps: options.nsSteps) / Double(options.orthogonalizeEvery)
    }
    public func probe(seed: UInt64, scale: Float) { jaguarProbe(set, selections, backend: backend, seed: seed, scale: scale) }

    /// Each tensor's update reads only its own weights and memory, so the non-matrix tensors go first
    /// and the hidden matrices group by group (one batched NS per group, NSWorkspace): the same bits
    /// as matrix by matrix in set order.
    public func update(_ r: ZORecord, replay: Bool) {
        var s = jaguarScalars(eps: options.eps, replay: replay)
        s.g = r.projectedGrad
        s.beta = options.beta
        let orthogonalize = Int(r.step) % options.orthogonalizeEvery == 0
        s.lr = r.lr * options.otherLRRatio
        for (i, e) in set.entries.enumerated() where !e.isHiddenMatrix {
            backend.jaguarUpdate(.sign, e.tensor, state: memory[i], selections[i], seed: r.seed, tensorId: e.tensorId, scalars: s)
        }
        for g in ns.groups {
            for (k, i) in g.entries.enumerated() {
                let e = set.entries[i]
                backend.jaguarUpdate(.memory, e.tensor, state: memory[i], selections[i], seed: r.seed, tensorId: e.tensorId, scalars: s)
                if orthogonalize { backend.copy(ns.slot(k, of: g), from: memory[i].reshaped(e.tensor.shape)) }
            }
            if orthogonalize { ns.orthogonalize(g) }
            for (k, i) in g.entries.enumerated() {
                let e = set.entries[i], d = ns.slot(k, of: g)
                // With a cache, NS(M) is kept for the steps in between (copied on the steps that compute it).
                if let o = cache[i] {
                    if orthogonalize { backend.copy(o, from: d) }
                    backend.addScaled(e.tensor, o, alpha: -r.lr)
                } else {
                    backend.addScaled(e.tensor, d, alpha: -r.lr)
                }
            }
        }
    }
}
