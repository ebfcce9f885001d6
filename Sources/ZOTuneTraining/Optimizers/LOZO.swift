import Foundation
import ZOTuneBackend
import ZOTuneModels

/// LOZO and LOZO-M (ZO-FRONTIER §3, docs/optimizers.md "lozo") on the batched low-rank probe: per
/// linear matrix W (rows × cols) q directions E_k = U_k V_kᵀ/√r, U_k (rows × r) fresh each step
/// from (step seed, tensor, k), V_k (cols × r) fixed for a window of ν steps, keyed by the seed of
/// the window's first step (LowRankDirections.windowSeed); the 2q members θ ± εE_k in one forward.
///   g_k = (ℓ₊ₖ − ℓ₋ₖ)/2ε
///   LOZO   (β = 0): W ← W − (η/q) Σ_k g_k U_k V_kᵀ/√r
///   LOZO-M (β > 0): N_k ← g_k U_k (first step), else β N_k + (1 − β) g_k U_k, where at a window's
///                   first step N_k is first re-projected onto the new V: N_k ← N_k V_oldᵀ V_new / cols;
///                   W ← W − (η/q) Σ_k N_k V_kᵀ/√r
/// Differences from the released code, each chosen on purpose: the update regenerates the very U_k
/// the probe used at every step (the released code draws V then U when probing a window's first step
/// but only U when updating, so on those steps its update is uncorrelated with g); 1/√r on the probe
/// and the update makes E[g·E] = G over fresh U, V — the paper's 1/r estimator, of which the
/// released code (no factor) is r times; it moves the linear matrices only (norms, biases,
/// embeddings and head fixed: LowRankProbe.heldFixed), so LOZO-M has no 1-D momentum; q > 1
/// directions share nothing but the window. Replay: records (seed, g_1..g_q) per step; the window's
/// seed is the record seed of its first step and N is rebuilt by the same recursion.
public struct LOZOOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// q, the directions per step (the released method: 1).
    public var directions: Int
    /// r, the rank of U_k, V_k.
    public var rank: Int
    /// ν: V_k is redrawn every ν steps.
    public var window: Int
    /// β of LOZO-M's m×r momentum factor; 0 is plain LOZO (no state).
    public var momentum: Float

    /// The large-model script's r = 2, ν = 50 (`run_lozo.py`), one direction, no momentum.
    public init(eps: Float = 1e-3, directions: Int = 1, rank: Int = 2, window: Int = 50, momentum: Float = 0) {
        self.eps = eps
        self.directions = directions
        self.rank = rank
        self.window = window
        self.momentum = momentum
    }
}

extension LOZOOptions: ZOOptimizerOptions, LowRankOptions {
    public static let spec = OptimizerSpec.onLowRankProbe(
        "lozo",
        "LOZO: low-rank U_k V_kᵀ/√r directions with V fixed for --window steps, the 2q members in one forward; --momentum β > 0 is LOZO-M (m×r factor)",
        flags: [.init("--window", "window", \Self.window), .init("--momentum", "momentum", \Self.momentum)],
        defaults: { LOZOOptions(eps: $0) }, make: { try LOZO(model: $1, set: $2, options: $0) })

    public func validate() throws {
        try Self.validateLowRank(directions: directions, rank: rank)
        // Steps are 32-bit in the trajectory: a longer window is one V for the whole run.
        guard window >= 1 && window <= Int(UInt32.max) else {
            throw OptimizerOptionError(Self.self, "window", "must be in 1...\(UInt32.max) steps (got \(window))")
        }
        guard momentum >= 0 && momentum < 1 else {
            throw OptimizerOptionError(Self.self, "momentum", "must be in [0, 1) for lozo (0: LOZO, > 0: LOZO-M; got \(momentum))")
        }
    }
}

public final class LOZO: ZOOptimizer, @unchecked Sendable {
    /// The set it was given (header "full"); it moves `probe.directions.entries` only.
    public let set: TrainableSet
    public let options: LOZOOptions
    public let probe: LowRankProbe
    let updater: LOZOUpdate
    /// Replay: the seeds of the current and the previous window's first steps.
    var windowSeeds: (current: UInt64?, previous: UInt64?) = (nil, nil)

    public init(model: CausalLM, set: TrainableSet, options: LOZOOptions) throws {
        try options.validate()
        self.set = set
        self.options = options
        do {
            probe = try LowRankProbe(model: model, set: set, directions: options.directions, rank: options.rank, eps: options.eps)
        } catch let e as BackendError {
            throw BackendError("lozo: \(e)")
        }
        updater = try LOZOUpdate(probe.directions, window: options.window, momentum: options.momentum)
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// One record per direction k: g_k (all with the step's seed).
    public var recordFields: [String] { ["g"] }
    /// The 2q members' forwards of B sequences each, run as one call of 2q·B rows.
    public var forwardsPerStep: Int { 2 * options.directions }
    /// The update: one GEMM per matrix, its factors regenerated once.
    public var passesPerStep: Double { 1 }
    public var stateBytes: Int { updater.factors.reduce(0) { $0 + $1.bytes } }
    public func resetState() {
        updater.reset()
        windowSeeds = (nil, nil)
    }
    /// The update's (rows × q·r)(q·r × cols) GEMMs.
    public var matrixFlopsPerStep: Double {
        probe.directions.entries.reduce(0) { $0 + 2 * Double($1.tensor.count) * Double(options.directions * options.rank) }
    }

    /// Reports the mean of the 2q members' losses.
    public func step(_ c: StepContext) throws -> StepOutcome {
        let seed = stepSeed(runSeed: c.runSeed, step: c.step, direction: 0)
        let w = c.step / options.window
        // The window's seed is its first step's seed: a function of the run seed, and the record seed
        // of that step for replay.
        let window = stepSeed(runSeed: c.runSeed, step: w * options.window, direction: 0)
        let previous = w > 0 ? stepSeed(runSeed: c.runSeed, step: (w - 1) * options.window, direction: 0) : nil
        probe.directions.windowSeed = window
        let outcome = try probe.step(c, seed: seed) { try updater.apply(step: c.step, seed: seed, g: $0, lr: c.lr, window: window, previous: previous) }
        windowSeeds = (window, previous)
        return outcome
    }

    /// Records grouped by step, from step 0 (as the trainer replays): each window's seed is taken
    /// from its first step's record, then the same update call as training.
    public func replay(_ records: [ZORecord]) {
        for (r, g) in recordsByStep(records) {
            let t = Int(r.step)
            if t % options.window == 0 { windowSeeds = (r.seed, windowSeeds.current) }
            guard let window = windowSeeds.current else {
                fatalError("lozo replay of step \(t + 1): the first step of its window (step \(t / options.window * options.window + 1)) was not replayed")
            }
            do {
                try updater.apply(step: t, seed: r.seed, g: g, lr: r.lr, window: window, previous: windowSeeds.previous)
            } catch {
                // Only the update's scratch allocation can fail; replay has no error path.
                fatalError("lozo replay of step \(t + 1): \(error)")
            }
        }
    }

}

/// LOZO's update over the primitive's directions (and LOZO-M's state): the part of a step after g.
final class LOZOUpdate {
    let directions: LowRankDirections
    let window: Int
    let momentum: Float
    /// LOZO-M: N_kᵀ of each covered matrix, (q·r × rows) f32 — the layout of the update's A factor.
    let factors: [Tensor]
    /// Whether N holds a step (the first step sets N = g·U, as the released code).
    var started = false

    init(_ d: LowRankDirections, window: Int, momentum: Float) throws {
        directions = d
        self.window = window
        self.momentum = momentum
        factors = momentum > 0
            ? try d.entries.map { try d.backend.allocate([d.directions * d.rank, $0.tensor.shape[0]], dtype: .f32, tag: .optimizer) } : []
    }

    func reset() {
        fillState(factors, 0, backend: directions.backend)
        started = false
    }

    /// Step t with seed `seed` in the window whose first step has seed `window` (`previous`: the
    /// window before). LOZO: the primitive's update with V_k from the window. LOZO-M: the N
    /// recursion, then one GEMM per matrix with N_k in place of g_k·U_k.
    func apply(step t: Int, seed: UInt64, g: [Float], lr: Float, window: UInt64, previous: UInt64?) throws {
        let d = directions, be = d.backend
        d.windowSeed = window
        guard momentum > 0 else { return try d.update(seed: seed, g: g, lr: lr) }
        let (beta, r, q) = (momentum, d.rank, d.directions)
        let reproject = started && t % self.window == 0
        precondition(!reproject || previous != nil, "a later window has a previous one")
        let widest = d.entries.map { $0.tensor.shape[0] + $0.tensor.shape[1] }.max() ?? 0
        let old = reproject ? try be.allocate([q * r * widest], tag: .scratch, zeroed: false) : nil
        let mix = reproject ? try be.allocate([r * r + r * (d.entries.map { $0.tensor.shape[0] }.max() ?? 0)], tag: .scratch, zeroed: false) : nil
        try d.addProducts(alpha: -lr / (Float(q) * Float(r).squareRoot())) { i, aT, bT in
            let n = factors[i], (rows, cols) = (d.entries[i].tensor.shape[0], d.entries[i].tensor.shape[1])
            d.fill(i, seed: seed, aT: aT, bT: bT, scales: g)   // aT: (g_k U_k)ᵀ, bT: V_kᵀ of this window
            if !started {
                be.copy(n, from: aT)
            } else {
                if reproject, let old, let mix {
                    // N_k ← N_k C_k, C_k = V_old,kᵀ V_new,k / cols (r × r); in the transposed layout
                    // N_kᵀ ← C_kᵀ N_kᵀ with C_kᵀ = V_newᵀ V_old / cols.
                    let oa = old.flatSlice(0, q * r * rows).reshaped([q * r, rows])
                    let ob = old.flatSlice(q * r * rows, q * r * cols).reshaped([q * r, cols])
                    d.fill(i, seed: seed, aT: oa, bT: ob, bSeed: previous!)
                    let ct = mix.flatSlice(0, r * r).reshaped([r, r]), tmp = mix.flatSlice(r * r, r * rows).reshaped([r, rows])
                    for k in 0..<q {
                        be.matmul(ct, bT.rows(k * r, r), transposeA: false, ob.rows(k * r, r), transposeB: true, alpha: 1 / Float(cols), beta: 0)
                        be.matmul(tmp, ct, transposeA: false, n.rows(k * r, r), transposeB: false, alpha: 1, beta: 0)
                        be.copy(n.rows(k * r, r), from: tmp)
                    }
                }
                be.scale(n, n, by: beta)
                be.addScaled(n, aT, alpha: 1 - beta)
            }
            be.copy(aT, from: n)
        }
        started = true
    }
}
