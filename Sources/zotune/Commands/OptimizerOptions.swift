import ArgumentParser
import Foundation
import ZOTuneTraining

/// `--optimizer` and the options every optimizer shares. The options of one optimizer live in
/// their own groups (`MeZOArguments` …), which `train` shows under their own titles.
struct OptimizerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Optimizer: \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")).",
                               discussion: OptimizerKind.allCases.map { "\($0.rawValue): \($0.summary)" }.joined(separator: "\n")))
    var optimizer = "mezo"
    @Option(help: "Perturbation scale ε.")
    var eps: Float = 1e-3
    @Option(name: .customLong("weight-decay"), help: "Weight decay λ, decoupled (θ −= ηλθ; not on biases and norm gains). Not for zo-cons.")
    var weightDecay: Float = 0

    func kind() throws -> OptimizerKind { try optimizerKind(optimizer) }

    /// The optimizer's configuration; an option that belongs to another optimizer is an error.
    func config(mezo: MeZOArguments, momentum: MomentumArguments, adam: AdamArguments, hizoo: HiZOOArguments) throws -> OptimizerConfig {
        let k = try kind()
        let given: [(String, Bool, OptimizerKind)] = [
            ("--directions", mezo.directions != nil, .mezo), ("--one-sided", mezo.oneSided, .mezo),
            ("--momentum", momentum.momentum != nil, .zoSGDMomentum),
            ("--beta1", adam.beta1 != nil, .zoAdam), ("--beta2", adam.beta2 != nil, .zoAdam), ("--adam-eps", adam.adamEps != nil, .zoAdam),
            ("--hessian-smoothing", hizoo.hessianSmoothing != nil, .hizoo),
        ]
        for (name, set, owner) in given where set && owner != k {
            throw ValidationError("\(name) is an option of --optimizer \(owner.rawValue), not \(k.rawValue)")
        }
        guard eps > 0 && eps.isFinite else { throw ValidationError("--eps must be positive") }
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
    @Option(help: "Momentum μ: m ← μm + g·z (default 0.9).")
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
