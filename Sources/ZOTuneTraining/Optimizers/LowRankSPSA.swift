import Foundation
import ZOTuneBackend
import ZOTuneModels

/// Plain low-rank SPSA on the batched low-rank two-sided probe (ZO-FRONTIER §9.2, LowRankProbe):
/// per step q directions E_k = A_k B_kᵀ/√r per linear matrix, regenerated from (step seed, tensor,
/// k); the 2q members θ ± εE_k scored in one forward of 2q·B sequences (θ never written), then
///   g_k = (ℓ₊ₖ − ℓ₋ₖ)/2ε,  W ← W − (η/q) Σ_k g_k E_k   (one GEMM per matrix).
/// What it moves is what the primitive covers: the matrices of linear layers. 1-D tensors (norm
/// gains, biases), embedding tables and the head stay fixed (LowRankProbe.heldFixed). No PEFT (an
/// adapter's tensors are not the model's linear layers) and no GGUF-block base (the update needs
/// float storage). Each step records one value g_k per direction k (same seed); replay is the
/// same update call with the recorded (seed, g, η), so it is bit-identical.
public struct LowRankSPSAOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// q, the directions per step.
    public var directions: Int
    /// r, the rank of each E_k.
    public var rank: Int

    /// q = 4, r = 1: EGGROLL's and LOZO's rank-1 default, four pairs per batched forward.
    public init(eps: Float = 1e-3, directions: Int = 4, rank: Int = 1) {
        self.eps = eps
        self.directions = directions
        self.rank = rank
    }
}

extension LowRankSPSAOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec.onLowRankProbe(
        "lowrank-spsa",
        "Low-rank SPSA: q directions A_k B_kᵀ/√r on the linear matrices, the 2q members in one forward of 2q·B rows (norms, embeddings, head fixed)",
        flags: [], defaults: { LowRankSPSAOptions(eps: $0) }, make: { try LowRankSPSA(model: $1, set: $2, options: $0) })

    public func validate() throws { try Self.validateLowRank(directions: directions, rank: rank) }
}

extension OptimizerSpec {
    /// The row of an optimizer that rides the batched low-rank probe (lowrank-spsa, lozo, subzero):
    /// it probes the base's linear matrices through its own forward hook, so it is built on the
    /// model over the full set, trains no adapter and has no decay term. `flags` beyond
    /// --directions and --rank.
    static func onLowRankProbe<O: ZOOptimizerOptions>(
        _ name: String, _ summary: String, flags: [OptimizerFlag],
        decay: String = "the low-rank update has no decay term",
        defaults: @escaping @Sendable (Float) -> O,
        make: @escaping @Sendable (O, CausalLM, TrainableSet) throws -> any ZOOptimizer) -> OptimizerSpec
        where O: LowRankOptions {
        OptimizerSpec(name, summary,
                      flags: [.init("--directions", "directions", \O.directions), .init("--rank", "rank", \O.rank)] + flags,
                      refuses: ["--weight-decay": decay],
                      refusesPEFT: "probes the base's linear matrices through its own forward hook, not an adapter's tensors",
                      defaults: { eps, _ in defaults(eps) },
                      make: { _, _, _ in throw BackendError("\(name) probes through the model's forward: it is built from the model (make(model:)), not from a trainable set") },
                      trainableSet: { _, model in TrainableSet.full(model) },
                      makeOnModel: make)
    }
}

/// Options of an optimizer on the batched low-rank probe: q directions of rank r.
protocol LowRankOptions {
    var directions: Int { get set }
    var rank: Int { get set }
}

extension LowRankOptions where Self: ZOOptimizerOptions {
    static func validateLowRank(directions: Int, rank: Int) throws {
        // The record's direction field is 16 bits.
        guard directions >= 1 && directions <= Int(UInt16.max) else {
            throw OptimizerOptionError(Self.self, "directions", "must be in 1...\(UInt16.max) (got \(directions))")
        }
        guard rank >= 1 else { throw OptimizerOptionError(Self.self, "rank", "must be at least 1 (got \(rank))") }
    }
}

extension LowRankSPSAOptions: LowRankOptions {}

public final class LowRankSPSA: ZOOptimizer, @unchecked Sendable {
    /// The set it was given (header "full"); it moves `probe.directions.entries` only.
    public let set: TrainableSet
    public let options: LowRankSPSAOptions
    public let probe: LowRankProbe

    public init(model: CausalLM, set: TrainableSet, options: LowRankSPSAOptions) throws {
        try options.validate()
        self.set = set
        self.options = options
        do {
            probe = try LowRankProbe(model: model, set: set, directions: options.directions, rank: options.rank, eps: options.eps)
        } catch let e as BackendError {
            throw BackendError("lowrank-spsa: \(e)")
        }
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// One record per direction k: g_k (all with the step's seed).
    public var recordFields: [String] { ["g"] }
    /// The 2q members' forwards of B sequences each, run as one call of 2q·B rows.
    public var forwardsPerStep: Int { 2 * options.directions }
    /// The update: one GEMM per matrix, its factors regenerated once.
    public var passesPerStep: Double { 1 }
    public var stateBytes: Int { 0 }
    public func resetState() {}
    /// The update's (rows × q·r)(q·r × cols) GEMMs.
    public var matrixFlopsPerStep: Double {
        probe.directions.entries.reduce(0) { $0 + 2 * Double($1.tensor.count) * Double(options.directions * options.rank) }
    }

    /// Reports the mean of the 2q members' losses.
    public func step(_ c: StepContext) throws -> StepOutcome {
        let seed = stepSeed(runSeed: c.runSeed, step: c.step, direction: 0)
        return try probe.step(c, seed: seed) { try probe.update(seed: seed, g: $0, lr: c.lr) }
    }

    /// Records grouped by step: each step's update with its recorded seed, g_1..g_q and η.
    public func replay(_ records: [ZORecord]) {
        for (r, g) in recordsByStep(records) {
            do {
                try probe.update(seed: r.seed, g: g, lr: r.lr)
            } catch {
                // Only the update's scratch allocation can fail; replay has no error path.
                fatalError("lowrank-spsa replay of step \(r.step + 1): \(error)")
            }
        }
    }
}
