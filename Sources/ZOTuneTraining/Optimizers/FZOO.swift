import Foundation
import ZOTuneBackend
import ZOTuneKernels

/// FZOO (DKmiyan/FZOO; ZO-FRONTIER §2): N one-sided Rademacher probes and one clean forward per
/// step, the step normalised by the spread of the N losses:
///   ℓ_k = L(θ + εu_k), ℓ₀ = L(θ) (after the probes, as the released code), σ = std(ℓ_1..ℓ_N)
///   (population), g_k = (ℓ_k − ℓ₀)/(N·σ), θ ← θ − η Σ_k g_k u_k.
/// u_k is ±1 from the Philox bits of (step seed, tensor, stream ZT_STREAM_RADEMACHER + k), never
/// stored; each probe is a perturb pass and an undo pass, and the update is one pass over the N
/// sign streams. The σ guard the released code lacks: σ ≤ `minStd` (all N losses equal within
/// rounding) would divide by 0 and write NaN into θ, so such a step leaves θ where the probes left
/// it (g_k = 0) and is recorded as skipped (loss_std 0). No weight decay (the released code has none).
public struct FZOOOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// N, the one-sided probes per step.
    public var probes: Int
    /// The σ guard: steps whose loss spread is at most this are skipped.
    public var minStd: Float

    /// minStd 1e-6: the losses are means of f32 log-probs, which resolve about 1e-7·|ℓ|; a spread
    /// below 1e-6 at losses of order 1 is rounding, not signal.
    public init(eps: Float = 1e-3, probes: Int = 8, minStd: Float = 1e-6) {
        self.eps = eps
        self.probes = probes
        self.minStd = minStd
    }

    enum CodingKeys: String, CodingKey { case eps, probes, minStd = "min_std" }
}

extension FZOOOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "fzoo", "FZOO: N one-sided Rademacher probes and a clean forward, the step divided by the losses' std (N + 1 forwards)",
        flags: [.init("--probes", "probes", \Self.probes), .init("--min-std", "min_std", \Self.minStd)],
        refuses: ["--weight-decay": "no weight decay, as the released code"],
        defaults: { eps, _ in FZOOOptions(eps: eps) }, make: { try FZOO(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        guard probes >= 2 && probes <= KernelBackend.maxSumTerms else {
            throw OptimizerOptionError(Self.self, "probes", "must be in 2...\(KernelBackend.maxSumTerms) (got \(probes)): σ needs two losses")
        }
        guard minStd >= 0 && minStd.isFinite else { throw OptimizerOptionError(Self.self, "min_std", "must be ≥ 0 (got \(minStd))") }
    }
}

public final class FZOO: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: FZOOOptions
    let backend: any Backend
    let kernels: KernelBackend

    public init(set: TrainableSet, options: FZOOOptions, backend: any Backend) throws {
        guard let kernels = backend as? KernelBackend else { throw BackendError("fzoo needs a kernel backend (cpu or cuda)") }
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        self.kernels = kernels
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// One record per probe k (direction k): g_k and the step's σ (0: the step was skipped).
    public var recordFields: [String] { ["g", "loss_std"] }
    public var forwardsPerStep: Int { options.probes + 1 }
    /// A perturb and an undo pass per probe, one update pass.
    public var passesPerStep: Double { Double(2 * options.probes + 1) }
    public var stateBytes: Int { 0 }
    public func resetState() {}

    /// The Philox stream of probe k (`zotune stream --rademacher` writes its signs).
    public static func stream(_ k: Int) -> UInt32 { ZT_STREAM_RADEMACHER + UInt32(k) }

    func move(_ seed: UInt64, probe k: Int, _ a: Float) {
        for e in set.entries {
            kernels.streamSum(into: e.tensor, tensorId: e.tensorId, direction: .rademacher,
                              terms: [SumTerm(seed: seed, stream: Self.stream(k), coef: a)])
        }
    }

    /// The update of one step's records (one per probe, in order); replay redoes the probes' moves first.
    func update(_ step: [ZORecord], replay: Bool) {
        let terms = step.map { SumTerm(seed: $0.seed, stream: Self.stream(Int($0.direction)), coef: -($0.lr * $0.projectedGrad)) }
        for e in set.entries {
            kernels.streamSum(into: e.tensor, tensorId: e.tensorId, direction: .rademacher, terms: terms, probeEps: replay ? options.eps : 0)
        }
    }

    /// The g_k and σ of one step's losses (nil σ: skipped by the guard).
    static func projected(losses: [Double], clean l0: Double, minStd: Float) -> (g: [Float], std: Float) {
        let n = Double(losses.count)
        let mean = losses.reduce(0, +) / n
        let std = (losses.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n).squareRoot()
        guard std > Double(minStd) else { return (losses.map { _ in 0 }, 0) }
        return (losses.map { Float(($0 - l0) / (n * std)) }, Float(std))
    }

    /// Reports ℓ₀, the clean loss.
    public func step(_ c: StepContext) throws -> StepOutcome {
        let (t, eps) = (c.step, options.eps)
        let seed = stepSeed(runSeed: c.runSeed, step: t, direction: 0)
        var losses: [Double] = []
        for k in 0..<options.probes {
            move(seed, probe: k, eps)
            let l = try c.loss()
            move(seed, probe: k, -eps)
            guard l.isFinite else { throw NonFiniteLoss(step: t, value: l) }
            losses.append(l)
        }
        let l0 = try c.loss()
        guard l0.isFinite else { throw NonFiniteLoss(step: t, value: l0) }
        let (g, std) = Self.projected(losses: losses, clean: l0, minStd: options.minStd)
        let records = g.enumerated().map { k, gk in
            ZORecord(step: UInt32(t), direction: UInt16(k), seed: seed, lr: c.lr, values: [gk, std])
        }
        update(records, replay: false)
        return StepOutcome(records: records, loss: l0)
    }

    public func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome {
        try withoutActuallyEscaping(loss) { l in try step(StepContext(step: t, runSeed: runSeed, lr: lr, loss: l)) }
    }

    /// Records grouped by step, each step one fused pass per tensor (probes redone, then the sum).
    public func replay(_ records: [ZORecord]) {
        var i = 0
        while i < records.count {
            var j = i + 1
            while j < records.count && records[j].step == records[i].step { j += 1 }
            update(Array(records[i..<j]), replay: true)
            i = j
        }
    }
}
