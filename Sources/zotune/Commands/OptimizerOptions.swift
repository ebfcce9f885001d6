import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneTraining

/// `--optimizer` and the options every optimizer shares. The options of one optimizer live in
/// their own groups (`MeZOArguments` …), which `train` shows under their own titles. Parsing only:
/// which optimizer owns a flag, the defaults and every range are the library's (`OptimizerSpec`).
struct OptimizerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Optimizer (default mezo): \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")).",
                               discussion: OptimizerKind.allCases.map { "\($0.rawValue): \($0.summary)" }.joined(separator: "\n")))
    var optimizer: String?
    @Option(help: "Perturbation scale ε (default 1e-3; with --peft: 1e-2 for lora and prompt, 1e-1 for prefix, as MeZO).")
    var eps: Float?
    @Option(name: .customLong("weight-decay"),
            help: "Weight decay λ, decoupled (θ −= ηλθ; not on biases and norm gains; default 0). Not for zo-cons, zo-muon and the Jaguar optimizers.")
    var weightDecay: Float?

    func kind() throws -> OptimizerKind { try optimizerKind(optimizer ?? "mezo") }

    var given: GivenFlags { typed([("--weight-decay", weightDecay)]) }
}

/// The flags typed on the command line, by name, with their parsed values.
typealias GivenFlags = [(flag: String, value: Any)]

/// (flag, value) for the options that were given: nil values and unset switches drop out.
func typed(_ pairs: [(String, Any?)]) -> GivenFlags { pairs.compactMap { f, v in v.map { (f, $0) } } }

/// A comma-separated list of names ("k, v" → ["k", "v"]).
func nameList(_ s: String?) -> [String]? { s.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } }

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
}

struct MeZOArguments: ParsableArguments {
    @Option(help: "SPSA directions per step: mezo's n-SPSA (default 1), the low-rank q of lowrank-spsa (default 4), lozo and subzero (default 1).")
    var directions: Int?
    @Flag(name: .customLong("one-sided"), help: "One-sided estimate (L(θ+εz) − L(θ))/ε.")
    var oneSided = false

    var given: GivenFlags { typed([("--directions", directions), ("--one-sided", oneSided ? true : nil)]) }
}

struct MomentumArguments: ParsableArguments {
    @Option(help: "Momentum μ of the SGD buffer: m ← μm + g·z (zo-sgd-mmt), of NS(g·Z) (zo-muon), of the block gradient (jaguar-sign released); default 0.9. lozo: β of LOZO-M's m×r momentum factor (default 0: plain LOZO).")
    var momentum: Float?

    var given: GivenFlags { typed([("--momentum", momentum)]) }
}

struct AdamArguments: ParsableArguments {
    @Option(help: "Adam β₁ (default 0.9).")
    var beta1: Float?
    @Option(help: "Adam β₂ (default 0.999).")
    var beta2: Float?
    @Option(name: .customLong("adam-eps"), help: "Adam ε added to √v̂ (default 1e-8).")
    var adamEps: Float?

    var given: GivenFlags { typed([("--beta1", beta1), ("--beta2", beta2), ("--adam-eps", adamEps)]) }
}

struct HiZOOArguments: ParsableArguments {
    @Option(name: .customLong("hessian-smoothing"),
            help: "α: H ← (1−α)H + α·Ĥ (default 1e-8, the anchor's README; its script's 0 makes HiZOO MeZO with a third forward).")
    var hessianSmoothing: Float?

    var given: GivenFlags { typed([("--hessian-smoothing", hessianSmoothing)]) }
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

    var given: GivenFlags {
        typed([("--ns-steps", nsSteps), ("--ns-polynomial", nsPolynomial), ("--other-lr-ratio", otherLRRatio),
               ("--momentum-placement", momentumPlacement), ("--tall-scale", tallScale ? true : nil),
               ("--orthogonalize-every", orthogonalizeEvery)])
    }
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

    var given: GivenFlags {
        typed([("--beta", beta), ("--block-fraction", blockFraction), ("--jaguar-variant", variant), ("--smoothing", smoothing ? true : nil)])
    }
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

    var given: GivenFlags {
        typed([("--dizo-interval", interval), ("--dizo-iterations", iterations), ("--dizo-eps", projectionEps),
               ("--dizo-step", projectionStep), ("--dizo-clip", clip), ("--dizo-layers", nameList(layers))])
    }
}

struct ZoopArguments: ParsableArguments {
    @Option(name: .customLong("zoop-layers"),
            help: "Noisy (and trained) linear layers of each chosen block: all, or roles such as q,k,v,o,gate,up,down (or checkpoint names: fc1, c_attn, …) (default all).")
    var layers: String?
    @Option(name: .customLong("zoop-blocks"), help: "Chosen transformer blocks, comma-separated indices (default: every block).")
    var blocks: String?
    @Option(name: .customLong("zoop-update"), help: "Step on the normalised estimate: sgd (default) or adam (f32 moments; --beta1/--beta2/--adam-eps).")
    var update: ZoopOptions.Update?

    func given() throws -> GivenFlags {
        let blocks = try self.blocks.map { b in
            try b.split(separator: ",").map { part in
                guard let i = Int(part.trimmingCharacters(in: .whitespaces)), i >= 0 else {
                    throw ValidationError("--zoop-blocks takes block indices, e.g. 0,1,2 (got \(b))")
                }
                return i
            }
        }
        return typed([("--zoop-layers", nameList(layers)), ("--zoop-blocks", blocks), ("--zoop-update", update)])
    }
}

/// Every optimizer's options at once, for the commands that train (train, pretrain).
struct OptimizerArgumentGroups: ParsableArguments {
    @OptionGroup(title: "Optimizer") var optim: OptimizerOptions
    @OptionGroup(title: "MeZO options") var mezo: MeZOArguments
    @OptionGroup(title: "Momentum (zo-sgd-mmt, zo-muon, jaguar-sign released, lozo)") var momentum: MomentumArguments
    @OptionGroup(title: "ZO-Adam options") var adam: AdamArguments
    @OptionGroup(title: "HiZOO options") var hizoo: HiZOOArguments
    @OptionGroup(title: "ZO-Muon and Jaguar-Muon options") var muon: MuonArguments
    @OptionGroup(title: "ZO-Jaguar options (jaguar-sign, jaguar-muon)") var jaguar: JaguarArguments
    @OptionGroup(title: "DiZO options") var dizo: DiZOArguments
    @OptionGroup(title: "Zoop options") var zoop: ZoopArguments
    @OptionGroup(title: "FZOO, Sparse MeZO, MeZO-SVRG, low-rank SPSA, LOZO and SubZero options") var frontier: FrontierArguments

    /// The optimizer's configuration: the flags typed here on top of `base` (a `--config` file's
    /// optimizer; nil: the chosen optimizer's defaults, with PEFT's ε and DiZO's PEFT layers). A
    /// flag that belongs to another optimizer, or a value out of range, is an error naming it.
    func config(base: OptimizerConfig? = nil, peft: PEFTConfig? = nil) throws -> OptimizerConfig {
        let kind = try optim.optimizer.map(optimizerKind)
        // Checked in this order: a flag of another optimizer is named before --weight-decay.
        let flags = mezo.given + momentum.given + adam.given + hizoo.given + muon.given + jaguar.given + dizo.given + (try zoop.given()) + frontier.given + optim.given
        do {
            return try OptimizerConfig.resolve(kind: kind, base: base, eps: optim.eps, given: flags, peft: peft)
        } catch let e as OptimizerOptionError {
            throw ValidationError(e.message)
        }
    }
}
