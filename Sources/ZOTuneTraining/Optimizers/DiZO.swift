import Foundation
import ZOTuneBackend
import ZOTuneModels

/// DiZO (Skilteee/DiZO; ZO-FAMILY.md §4.9): ZO-SGD steps (MeZO's update, one two-sided
/// direction), and after every K-th step a projection search that rescales each projected
/// tensor's distance from the base, θ_ℓ ← θ⁰_ℓ + r_ℓ(θ_ℓ − θ⁰_ℓ), with r_ℓ found by SPSA on fresh
/// minibatches. Per search, with t_ℓ = ‖θ_ℓ − θ⁰_ℓ‖ and γ_ℓ = t_ℓ:
///   repeat `iterations` times, each on a new search minibatch:
///     u_ℓ ~ N(0, 1) clipped to ±(τ/ε_p)t_ℓ;  ℓ₁ = L(γ + ε_p u);  ℓ₂ = L(γ − ε_p u)
///     ĝ = (ℓ₁ − ℓ₂)/2ε_p;  γ_ℓ ← clip(γ_ℓ − s·t_ℓ·ĝ·u_ℓ, (1 − τ)t_ℓ, (1 + τ)t_ℓ)
///   r_ℓ = γ_ℓ/(t_ℓ + 1e-8)
/// where L(γ) evaluates θ_ℓ = θ⁰_ℓ + (γ_ℓ/(t_ℓ + 1e-8))(θ_ℓ − θ⁰_ℓ). The two scalings (the u clip,
/// the step × t_ℓ) are the released code's. Every probe is computed from two unchanged shadows
/// (θ⁰ and θ at the search's start) into the weights, never by multiplying and dividing in place,
/// so nothing drifts; the ratios go into the trajectory, so replay needs no forward.
///
/// Memory: θ⁰ of the projected tensors only (the anchor keeps a full model copy) plus θ at the
/// search's start, both in the weights' dtype under the ledger's `optimizer` tag.
public struct DiZOOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var weightDecay: Float
    /// K: a search after every K-th step (0: never, which is ZO-SGD).
    public var interval: Int
    /// SPSA iterations per search, each on a new minibatch.
    public var iterations: Int
    /// ε_p, the probe scale on γ.
    public var projectionEps: Float
    /// s, the γ step (scaled by t_ℓ).
    public var projectionStep: Float
    /// τ: ratios stay in [1 − τ, 1 + τ].
    public var clip: Float
    /// Which tensors are projected: the roles q, k, v, o (those weights of every layer; a fused
    /// qkv counts as each of q, k and v; LoRA adapters count with the layer they adapt), a
    /// tensor's full name (prompt_embeddings) or any name suffix containing a dot.
    public var layers: [String]

    public init(eps: Float = 1e-3, weightDecay: Float = 0, interval: Int = 50, iterations: Int = 10, projectionEps: Float = 0.1,
                projectionStep: Float = 2.0, clip: Float = 0.2, layers: [String] = ["k", "v"]) {
        self.eps = eps
        self.weightDecay = weightDecay
        self.interval = interval
        self.iterations = iterations
        self.projectionEps = projectionEps
        self.projectionStep = projectionStep
        self.clip = clip
        self.layers = layers
    }

    enum CodingKeys: String, CodingKey {
        case eps, weightDecay = "weight_decay", interval, iterations, projectionEps = "projection_eps",
             projectionStep = "projection_step", clip, layers
    }

    /// The tensors DiZO projects by default: the adapter's own under PEFT (the prompt rows, or
    /// LoRA's targets), else k and v, the released code's.
    static func defaultLayers(_ peft: PEFTConfig?) -> [String] {
        switch peft {
        case .prefix, .prompt: return ["prompt_embeddings"]
        case .lora(let l): return l.targets
        case nil: return DiZOOptions().layers
        }
    }

    /// Whether `name` is a projected tensor.
    public func projects(_ name: String) -> Bool {
        // The tensor's role (LoRA's A and B have the role of the layer they adapt).
        let role = Architecture.role(of: name)
        let name = name.replacingOccurrences(of: ".lora_A.weight", with: ".weight").replacingOccurrences(of: ".lora_B.weight", with: ".weight")
        return layers.contains { short in
            switch short {
            case "q", "k", "v", "o":
                guard let role, role.layer != nil, role.part == .weight else { return false }
                return role.role.covers.contains { $0.rawValue == short }
            default:
                return name == short || (short.contains(".") && name.hasSuffix(short))
            }
        }
    }
}

extension DiZOOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "dizo", "DiZO: ZO-SGD plus periodic layer-wise projection searches",
        flags: [.init("--dizo-interval", "interval", \Self.interval), .init("--dizo-iterations", "iterations", \Self.iterations),
                .init("--dizo-eps", "projection_eps", \Self.projectionEps), .init("--dizo-step", "projection_step", \Self.projectionStep),
                .init("--dizo-clip", "clip", \Self.clip), .init("--dizo-layers", "layers", \Self.layers),
                .init("--weight-decay", "weight_decay", \Self.weightDecay)],
        defaults: { eps, peft in DiZOOptions(eps: eps, layers: DiZOOptions.defaultLayers(peft)) },
        make: { try DiZO(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkWeightDecay(weightDecay, Self.self)
        guard interval >= 0 else { throw OptimizerOptionError(Self.self, "interval", "must be ≥ 0 (0: no searches)") }
        guard iterations >= 1 else { throw OptimizerOptionError(Self.self, "iterations", "must be at least 1") }
        // Each search iteration costs two forwards: beyond a million a search never ends.
        guard iterations <= 1_000_000 else { throw OptimizerOptionError(Self.self, "iterations", "must be at most 1000000 (got \(iterations))") }
        guard projectionEps > 0 && projectionEps.isFinite else { throw OptimizerOptionError(Self.self, "projection_eps", "must be positive") }
        guard projectionStep > 0 && projectionStep.isFinite else { throw OptimizerOptionError(Self.self, "projection_step", "must be positive (got \(projectionStep))") }
        guard clip > 0 && clip < 1 else { throw OptimizerOptionError(Self.self, "clip", "must be in (0, 1)") }
    }
}

extension OptimizerKind { public static let dizo = DiZOOptions.spec.kind }
extension OptimizerConfig { public static func dizo(_ o: DiZOOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class DiZO: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: DiZOOptions
    let backend: any Backend
    /// The ZO-SGD steps between searches.
    let sgd: MeZO
    /// The projected entries, in set order: a ratio record's direction indexes this list.
    let projected: [TrainableSet.Entry]
    /// θ⁰ of each projected tensor, and θ at the current search's start.
    let base: [Tensor]
    let start: [Tensor]

    public init(set: TrainableSet, options: DiZOOptions, backend: any Backend) throws {
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        sgd = MeZO(set: set, options: MeZOOptions(eps: options.eps, weightDecay: options.weightDecay), backend: backend)
        projected = set.entries.filter { options.projects($0.name) }
        if options.interval > 0 && projected.isEmpty {
            throw BackendError("DiZO: no trainable tensor matches --dizo-layers \(options.layers.joined(separator: ",")) (q, k, v, o or a name suffix)")
        }
        guard projected.count <= Int(UInt16.max) else { throw BackendError("DiZO: \(projected.count) projected tensors, at most 65535") }
        base = try projected.map { try backend.allocate($0.tensor.shape, dtype: $0.tensor.dtype, tag: .optimizer) }
        start = try projected.map { try backend.allocate($0.tensor.shape, dtype: $0.tensor.dtype, tag: .optimizer) }
        for (b, e) in zip(base, projected) { backend.copy(b, from: e.tensor) }
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    public var meanForwardsPerStep: Double {
        2 + (options.interval > 0 ? Double(2 * options.iterations) / Double(options.interval) : 0)
    }
    public var passesPerStep: Double {
        3 + (options.interval > 0 ? Double(2 * options.iterations + 1) / Double(options.interval) : 0)
    }
    public var stateBytes: Int { (base + start).reduce(0) { $0 + $1.bytes } }
    /// θ⁰ is the model as loaded: the trainer reloads it before replaying, so nothing to reset.
    public func resetState() {}

    /// Whether a search follows step t.
    func searches(after t: Int) -> Bool { options.interval > 0 && (t + 1) % options.interval == 0 }

    public func step(_ context: StepContext) throws -> StepOutcome {
        let t = context.step
        let outcome = try sgd.step(context)
        guard searches(after: t) else { return outcome }
        let ratios = try search(number: (t + 1) / options.interval - 1, runSeed: context.runSeed, loss: context.searchLoss)
        let records = ratios.enumerated().map { k, r in
            ZORecord(step: UInt32(t), direction: UInt16(k), kind: .projection, seed: 0, lr: 0, values: [r])
        }
        return StepOutcome(records: outcome.records + records, loss: outcome.loss)
    }

    /// θ_ℓ = θ⁰_ℓ + α_ℓ(θ_start,ℓ − θ⁰_ℓ) for every projected tensor.
    func apply(_ alphas: [Float]) {
        for (k, e) in projected.enumerated() { backend.lerp(e.tensor, base[k], start[k], alpha: alphas[k]) }
    }

    /// Search `number` (0, 1, …): leaves θ at the found ratios and returns them.
    func search(number n: Int, runSeed: UInt64, loss: (Int) throws -> Double) throws -> [Float] {
        for (k, e) in projected.enumerated() { backend.copy(start[k], from: e.tensor) }
        let dist = (0..<projected.count).map { backend.squaredDistance(start[$0], base[$0]).squareRoot() }
        let (ep, tau, s) = (Double(options.projectionEps), Double(options.clip), Double(options.projectionStep))
        var gamma = dist
        func alphas(_ g: [Double]) -> [Float] { zip(g, dist).map { Float($0 / ($1 + 1e-8)) } }
        for i in 0..<options.iterations {
            let j = n * options.iterations + i
            let u = zip(searchNormals(seed: stepSeed(runSeed: runSeed ^ 0xD120_5EA2, step: n, direction: i), count: dist.count), dist)
                .map { z, t in min(max(z, -tau / ep * t), tau / ep * t) }
            apply(alphas(zip(gamma, u).map { $0 + ep * $1 }))
            let l1 = try loss(j)
            apply(alphas(zip(gamma, u).map { $0 - ep * $1 }))
            let l2 = try loss(j)
            guard l1.isFinite && l2.isFinite else {
                for (k, e) in projected.enumerated() { backend.copy(e.tensor, from: start[k]) }   // back to the search's start
                throw NonFiniteLoss(step: (n + 1) * options.interval - 1, value: l1.isFinite ? l2 : l1)
            }
            let ghat = (l1 - l2) / (2 * ep)
            for k in gamma.indices {
                gamma[k] = min(max(gamma[k] - s * dist[k] * ghat * u[k], (1 - tau) * dist[k]), (1 + tau) * dist[k])
            }
        }
        let ratios = alphas(gamma)
        apply(ratios)
        return ratios
    }

    public func replay(_ records: [ZORecord]) {
        for r in records {
            switch r.kind {
            case .direction: sgd.replay([r])
            case .projection:
                let k = Int(r.direction)
                precondition(k < projected.count, "projection record for tensor \(k) of \(projected.count)")
                backend.lerp(projected[k].tensor, base[k], projected[k].tensor, alpha: r.values[0])
            }
        }
    }
}

/// N(0, 1) draws on the host from a seed (Box–Muller on SplitMix64 words): DiZO's γ probes, a
/// handful per search, so the device stream is not needed.
func searchNormals(seed: UInt64, count: Int) -> [Double] {
    (0..<count).map { i in
        let u1 = (Double(stepSeed(runSeed: seed, step: i, direction: 0) >> 11) + 0.5) / 9_007_199_254_740_992.0
        let u2 = Double(stepSeed(runSeed: seed, step: i, direction: 1) >> 11) / 9_007_199_254_740_992.0
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
