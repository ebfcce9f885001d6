import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneTraining

/// `--optimizer` and the options every optimizer shares. The options of one optimizer live in
/// their own groups (`MeZOArguments` …), which `train` shows under their own titles.
struct OptimizerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Optimizer: \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")).",
                               discussion: OptimizerKind.allCases.map { "\($0.rawValue): \($0.summary)" }.joined(separator: "\n")))
    var optimizer = "mezo"
    @Option(help: "Perturbation scale ε (default 1e-3; with --peft: 1e-2 for lora and prompt, 1e-1 for prefix, as MeZO).")
    var eps: Float?
    @Option(name: .customLong("weight-decay"),
            help: "Weight decay λ, decoupled (θ −= ηλθ; not on biases and norm gains). Not for zo-cons, zo-muon and the Jaguar optimizers.")
    var weightDecay: Float = 0

    func kind() throws -> OptimizerKind { try optimizerKind(optimizer) }

    /// The optimizer's configuration; an option that belongs to another optimizer is an error.
    func config(mezo: MeZOArguments, momentum: MomentumArguments, adam: AdamArguments, hizoo: HiZOOArguments,
                muon: MuonArguments, jaguar: JaguarArguments, dizo: DiZOArguments, zoop: ZoopArguments,
                peft: PEFTConfig? = nil) throws -> OptimizerConfig {
        let k = try kind()
        let eps = self.eps ?? peft?.defaultEps ?? 1e-3
        if peft != nil && k == .zoop {
            throw ValidationError("--optimizer zoop trains its own noisy linear layers of the base; it does not combine with --peft")
        }
        let given: [(String, Bool, [OptimizerKind])] = [
            ("--directions", mezo.directions != nil, [.mezo]), ("--one-sided", mezo.oneSided, [.mezo]),
            ("--momentum", momentum.momentum != nil, [.zoSGDMomentum, .zoMuon, .jaguarSign]),
            ("--beta1", adam.beta1 != nil, [.zoAdam, .zoop]), ("--beta2", adam.beta2 != nil, [.zoAdam, .zoop]),
            ("--adam-eps", adam.adamEps != nil, [.zoAdam, .zoop]),
            ("--hessian-smoothing", hizoo.hessianSmoothing != nil, [.hizoo]),
            ("--ns-steps", muon.nsSteps != nil, [.zoMuon, .jaguarMuon]), ("--ns-polynomial", muon.nsPolynomial != nil, [.zoMuon, .jaguarMuon]),
            ("--other-lr-ratio", muon.otherLRRatio != nil, [.zoMuon, .jaguarMuon]),
            ("--momentum-placement", muon.momentumPlacement != nil, [.zoMuon]), ("--tall-scale", muon.tallScale, [.zoMuon]),
            ("--orthogonalize-every", muon.orthogonalizeEvery != nil, [.jaguarMuon]),
            ("--beta", jaguar.beta != nil, [.jaguarSign, .jaguarMuon]), ("--block-fraction", jaguar.blockFraction != nil, [.jaguarSign, .jaguarMuon]),
            ("--jaguar-variant", jaguar.variant != nil, [.jaguarSign]), ("--smoothing", jaguar.smoothing, [.jaguarSign]),
            ("--dizo-interval", dizo.interval != nil, [.dizo]), ("--dizo-iterations", dizo.iterations != nil, [.dizo]),
            ("--dizo-eps", dizo.projectionEps != nil, [.dizo]), ("--dizo-step", dizo.projectionStep != nil, [.dizo]),
            ("--dizo-clip", dizo.clip != nil, [.dizo]), ("--dizo-layers", dizo.layers != nil, [.dizo]),
            ("--zoop-layers", zoop.layers != nil, [.zoop]), ("--zoop-blocks", zoop.blocks != nil, [.zoop]),
            ("--zoop-update", zoop.update != nil, [.zoop]),
        ]
        for (name, set, owners) in given where set && !owners.contains(k) {
            throw ValidationError("\(name) is an option of --optimizer \(owners.map(\.rawValue).joined(separator: "/")), not \(k.rawValue)")
        }
        guard eps > 0 && eps.isFinite else { throw ValidationError("--eps must be positive") }
        guard weightDecay >= 0 && weightDecay.isFinite else { throw ValidationError("--weight-decay must be 0 or positive (got \(weightDecay))") }
        if let e = adam.adamEps, !(e > 0 && e.isFinite) { throw ValidationError("--adam-eps must be positive (got \(e))") }
        if let s = dizo.projectionStep, !(s > 0 && s.isFinite) { throw ValidationError("--dizo-step must be positive (got \(s))") }
        // Each direction or search iteration costs forwards; beyond a million a step never ends
        // (and 2n forwards overflow a count far before Int.max).
        if let n = mezo.directions, n > 1_000_000 { throw ValidationError("--directions must be at most 1000000 (got \(n))") }
        if let n = dizo.iterations, n > 1_000_000 { throw ValidationError("--dizo-iterations must be at most 1000000 (got \(n))") }
        if [.zoMuon, .jaguarSign, .jaguarMuon, .zoop].contains(k) && weightDecay != 0 {
            throw ValidationError("--weight-decay is not available with \(k.rawValue) (the released code has none)")
        }
        if let m = momentum.momentum, !(m >= 0 && m < 1) { throw ValidationError("--momentum must be in [0, 1)") }
        if let n = muon.nsSteps, !(1...100).contains(n) { throw ValidationError("--ns-steps must be in 1…100") }
        if let r = muon.otherLRRatio, !(r >= 0 && r.isFinite) { throw ValidationError("--other-lr-ratio must be ≥ 0") }
        if let e = muon.orthogonalizeEvery, e < 1 { throw ValidationError("--orthogonalize-every must be at least 1") }
        if let b = jaguar.beta, !(b >= 0 && b < 1) { throw ValidationError("--beta must be in [0, 1)") }
        if let f = jaguar.blockFraction, !(f > 0 && f <= 1) { throw ValidationError("--block-fraction must be in (0, 1]") }
        // Each optimizer's own defaults, then what was given.
        switch k {
        case .mezo:
            var o = MeZOOptions(eps: eps, weightDecay: weightDecay, oneSided: mezo.oneSided)
            if let n = mezo.directions { o.directions = n }
            guard o.directions >= 1 else { throw ValidationError("--directions must be at least 1") }
            return .mezo(o)
        case .zoSGDMomentum:
            var o = ZOMomentumOptions(eps: eps, weightDecay: weightDecay)
            if let m = momentum.momentum { o.momentum = m }
            guard o.momentum >= 0 && o.momentum < 1 else { throw ValidationError("--momentum must be in [0, 1)") }
            return .zoSGDMomentum(o)
        case .zoAdam:
            var o = ZOAdamOptions(eps: eps, weightDecay: weightDecay)
            if let b = adam.beta1 { o.beta1 = b }
            if let b = adam.beta2 { o.beta2 = b }
            if let e = adam.adamEps { o.adamEps = e }
            guard (0..<1).contains(o.beta1) && (0..<1).contains(o.beta2) else { throw ValidationError("--beta1 and --beta2 must be in [0, 1)") }
            return .zoAdam(o)
        case .zoSign:
            return .zoSign(ZOSignOptions(eps: eps, weightDecay: weightDecay))
        case .zoCons:
            guard weightDecay == 0 else { throw ValidationError("--weight-decay is not available with zo-cons (its moves are pure ±ηgz)") }
            return .zoCons(ZOConsOptions(eps: eps))
        case .hizoo:
            var o = HiZOOOptions(eps: eps, weightDecay: weightDecay)
            if let a = hizoo.hessianSmoothing { o.hessianSmoothing = a }
            guard o.hessianSmoothing >= 0 && o.hessianSmoothing < 1 else { throw ValidationError("--hessian-smoothing must be in [0, 1)") }
            return .hizoo(o)
        case .zoMuon:
            var o = ZOMuonOptions(eps: eps)
            if let m = momentum.momentum { o.momentum = m }
            if let n = muon.nsSteps { o.nsSteps = n }
            if let p = muon.nsPolynomial { o.polynomial = p }
            if let p = muon.momentumPlacement { o.placement = p }
            if let r = muon.otherLRRatio { o.otherLRRatio = r }
            o.tallScale = muon.tallScale
            return .zoMuon(o)
        case .jaguarSign:
            var o = JaguarSignOptions(eps: eps)
            if let m = momentum.momentum { o.momentum = m }
            if let b = jaguar.beta { o.beta = b }
            if let f = jaguar.blockFraction { o.fraction = f }
            if let v = jaguar.variant { o.variant = v }
            o.smoothing = jaguar.smoothing
            if o.variant == .paper && (momentum.momentum != nil || o.smoothing) {
                throw ValidationError("--momentum and --smoothing belong to --jaguar-variant released")
            }
            return .jaguarSign(o)
        case .jaguarMuon:
            var o = JaguarMuonOptions(eps: eps)
            if let b = jaguar.beta { o.beta = b }
            if let f = jaguar.blockFraction { o.fraction = f }
            if let n = muon.nsSteps { o.nsSteps = n }
            if let p = muon.nsPolynomial { o.polynomial = p }
            if let r = muon.otherLRRatio { o.otherLRRatio = r }
            if let e = muon.orthogonalizeEvery { o.orthogonalizeEvery = e }
            return .jaguarMuon(o)
        case .dizo:
            var o = DiZOOptions(eps: eps, weightDecay: weightDecay)
            if let n = dizo.interval { o.interval = n }
            if let n = dizo.iterations { o.iterations = n }
            if let e = dizo.projectionEps { o.projectionEps = e }
            if let s = dizo.projectionStep { o.projectionStep = s }
            if let c = dizo.clip { o.clip = c }
            if let l = dizo.layers {
                o.layers = l.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            } else if case .prefix = peft {
                o.layers = ["prompt_embeddings"]
            } else if case .prompt = peft {
                o.layers = ["prompt_embeddings"]
            } else if case .lora(let l) = peft {
                o.layers = l.targets
            }
            guard o.interval >= 0 else { throw ValidationError("--dizo-interval must be ≥ 0 (0: no searches)") }
            guard o.iterations >= 1 else { throw ValidationError("--dizo-iterations must be at least 1") }
            guard o.projectionEps > 0 && o.projectionEps.isFinite else { throw ValidationError("--dizo-eps must be positive") }
            guard o.clip > 0 && o.clip < 1 else { throw ValidationError("--dizo-clip must be in (0, 1)") }
            return .dizo(o)
        case .zoop:
            var o = ZoopOptions(eps: eps)
            if let l = zoop.layers { o.layers = l.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let b = zoop.blocks {
                o.blocks = try b.split(separator: ",").map { part in
                    guard let i = Int(part.trimmingCharacters(in: .whitespaces)), i >= 0 else {
                        throw ValidationError("--zoop-blocks takes block indices, e.g. 0,1,2 (got \(b))")
                    }
                    return i
                }
            }
            if let u = zoop.update { o.update = u }
            if let b = adam.beta1 { o.beta1 = b }
            if let b = adam.beta2 { o.beta2 = b }
            if let e = adam.adamEps { o.adamEps = e }
            if o.update == .sgd && (adam.beta1 != nil || adam.beta2 != nil || adam.adamEps != nil) {
                throw ValidationError("--beta1, --beta2 and --adam-eps belong to --zoop-update adam")
            }
            return .zoop(o)
        }
    }
}

func optimizerKind(_ name: String) throws -> OptimizerKind {
    guard let k = OptimizerKind(rawValue: name) else {
        throw ValidationError("--optimizer must be one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")) (got \(name))")
    }
    return k
}

/// `--optimizer` alone, for commands that size or time a step with the optimizer's defaults.
struct OptimizerChoice: ParsableArguments {
    @Option(help: "Optimizer (its default hyper-parameters): \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var optimizer = "mezo"

    func defaultConfig() throws -> OptimizerConfig { OptimizerConfig.defaults(try optimizerKind(optimizer)) }
}

struct MeZOArguments: ParsableArguments {
    @Option(help: "SPSA directions per step, n-SPSA (default 1).")
    var directions: Int?
    @Flag(name: .customLong("one-sided"), help: "One-sided estimate (L(θ+εz) − L(θ))/ε.")
    var oneSided = false
}

struct MomentumArguments: ParsableArguments {
    @Option(help: "Momentum μ of the SGD buffer: m ← μm + g·z (zo-sgd-mmt), of NS(g·Z) (zo-muon), of the block gradient (jaguar-sign released); default 0.9.")
    var momentum: Float?
}

struct AdamArguments: ParsableArguments {
    @Option(help: "Adam β₁ (default 0.9).")
    var beta1: Float?
    @Option(help: "Adam β₂ (default 0.999).")
    var beta2: Float?
    @Option(name: .customLong("adam-eps"), help: "Adam ε added to √v̂ (default 1e-8).")
    var adamEps: Float?
}

struct HiZOOArguments: ParsableArguments {
    @Option(name: .customLong("hessian-smoothing"),
            help: "α: H ← (1−α)H + α·Ĥ (default 1e-8, the anchor's README; its script's 0 makes HiZOO MeZO with a third forward).")
    var hessianSmoothing: Float?
}

extension NewtonSchulz: ExpressibleByArgument {}
extension ZoopOptions.Update: ExpressibleByArgument {}
extension MomentumPlacement: ExpressibleByArgument {}
extension JaguarVariant: ExpressibleByArgument {}

struct MuonArguments: ParsableArguments {
    @Option(name: .customLong("ns-steps"), help: "Newton–Schulz iterations (default 10).")
    var nsSteps: Int?
    @Option(name: .customLong("ns-polynomial"),
            help: "Newton–Schulz polynomial: quintic (Muon, default of zo-muon) or cubic (default of jaguar-muon).")
    var nsPolynomial: NewtonSchulz?
    @Option(name: .customLong("other-lr-ratio"),
            help: "Learning rate of embeddings, LM head, biases and norm gains as a fraction of --lr (default 0.01; 1 is the released ZO-Muon, 0 freezes them).")
    var otherLRRatio: Float?
    @Option(name: .customLong("momentum-placement"),
            help: "zo-muon: after-ns (released: momentum on NS(g·Z)) or before-ns (ZOTune variant: NS of the momentum of g·Z).")
    var momentumPlacement: MomentumPlacement?
    @Flag(name: .customLong("tall-scale"), help: "zo-muon: scale each matrix step by √max(1, rows/cols).")
    var tallScale = false
    @Option(name: .customLong("orthogonalize-every"),
            help: "jaguar-muon: recompute NS(M) every k steps, applying the cached one in between (default 1; k > 1 keeps one more f32 copy of the matrices).")
    var orthogonalizeEvery: Int?
}

struct JaguarArguments: ParsableArguments {
    @Option(help: "Memory factor β: m ← βm + (1−β)ĝ on the probed block (default 0.01).")
    var beta: Float?
    @Option(name: .customLong("block-fraction"),
            help: "Fraction of each tensor's rows and of its columns probed per step (default 0.1: ≈1% of a matrix).")
    var blockFraction: Double?
    @Option(name: .customLong("jaguar-variant"),
            help: "jaguar-sign: paper (sign of a persistent block memory, default) or released (the public code: SGD momentum on ρτ).")
    var variant: JaguarVariant?
    @Flag(help: "jaguar-sign released: scale the block gradient by 1 − β (the code's zo_use_smoothing).")
    var smoothing = false
}

struct DiZOArguments: ParsableArguments {
    @Option(name: .customLong("dizo-interval"), help: "K: a projection search after every K-th step (default 50; 0: none, i.e. ZO-SGD).")
    var interval: Int?
    @Option(name: .customLong("dizo-iterations"), help: "SPSA iterations per search, each on a new minibatch (default 10).")
    var iterations: Int?
    @Option(name: .customLong("dizo-eps"), help: "ε_p, the probe scale of the ratios (default 0.1).")
    var projectionEps: Float?
    @Option(name: .customLong("dizo-step"), help: "s, the ratio step, scaled by ‖θ − θ⁰‖ as the released code does (default 2.0).")
    var projectionStep: Float?
    @Option(name: .customLong("dizo-clip"), help: "τ: ratios stay in [1 − τ, 1 + τ] (default 0.2).")
    var clip: Float?
    @Option(name: .customLong("dizo-layers"),
            help: "Projected tensors: q, k, v, o of every attention layer, or name suffixes, comma-separated (default k,v: the released code).")
    var layers: String?
}

struct ZoopArguments: ParsableArguments {
    @Option(name: .customLong("zoop-layers"),
            help: "Noisy (and trained) linear layers of each chosen block: all, or roles such as q,k,v,o,gate,up,down (or checkpoint names: fc1, c_attn, …) (default all).")
    var layers: String?
    @Option(name: .customLong("zoop-blocks"), help: "Chosen transformer blocks, comma-separated indices (default: every block).")
    var blocks: String?
    @Option(name: .customLong("zoop-update"), help: "Step on the normalised estimate: sgd (default) or adam (f32 moments; --beta1/--beta2/--adam-eps).")
    var update: ZoopOptions.Update?
}

/// Every optimizer's options at once, for the commands that train (train, pretrain).
struct OptimizerArgumentGroups: ParsableArguments {
    @OptionGroup(title: "Optimizer") var optim: OptimizerOptions
    @OptionGroup(title: "MeZO options") var mezo: MeZOArguments
    @OptionGroup(title: "Momentum (zo-sgd-mmt, zo-muon, jaguar-sign released)") var momentum: MomentumArguments
    @OptionGroup(title: "ZO-Adam options") var adam: AdamArguments
    @OptionGroup(title: "HiZOO options") var hizoo: HiZOOArguments
    @OptionGroup(title: "ZO-Muon and Jaguar-Muon options") var muon: MuonArguments
    @OptionGroup(title: "ZO-Jaguar options (jaguar-sign, jaguar-muon)") var jaguar: JaguarArguments
    @OptionGroup(title: "DiZO options") var dizo: DiZOArguments
    @OptionGroup(title: "Zoop options") var zoop: ZoopArguments

    func config(peft: PEFTConfig? = nil) throws -> OptimizerConfig {
        try optim.config(mezo: mezo, momentum: momentum, adam: adam, hizoo: hizoo, muon: muon, jaguar: jaguar, dizo: dizo, zoop: zoop, peft: peft)
    }
}
