import Foundation
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

/// SubZero (ZO-FRONTIER §4, docs/optimizers.md "subzero") on the batched low-rank probe: per linear
/// matrix W (m × n) orthonormal bases U (m × r), V (n × r), refreshed every F steps, and per step
/// and direction a fresh r × r Gaussian z0_k:
///   E_k = √(mn)/r · U z0_k Vᵀ   (rank r, E‖E_k‖²_F = mn as a full Gaussian z, E[⟨G, E⟩E] = G)
///   g_k = (ℓ₊ₖ − ℓ₋ₖ)/2ε,  W ← W − (η/q) Σ_k g_k E_k
/// It rides the batched probe: E_k = A_k B_kᵀ/√r with A_k = √(mn/r)·U z0_k and B_k = V, so the 2q
/// members are one forward of 2q·B rows (θ never written) and the update is one GEMM per matrix.
/// U, V for the window starting at step w·F are the Q factors of a Householder QR, in Double, of
/// Philox normals keyed (seed of step w·F, tensor, stream `basisStream`), signs fixed so R's
/// diagonal is positive: a pure function of (seed, tensor, window) on any device, rounded to f32.
/// z0_k: elements [k·r², (k+1)·r²) of (step seed, tensor, ZT_STREAM_LOWRANK).
/// Differences from the released code: U, V from the step-seed stream instead of the global RNG
/// state (deterministic, replayable), QR in Double on the host instead of cuSOLVER in f32 cast to
/// the parameter dtype; q directions share U, V; no SGD momentum (the released default μ = 0); the
/// linear matrices only move (norms, biases, embeddings, head fixed: LowRankProbe.heldFixed);
/// non-square reshaping (the released PEFT modes) does not apply, as PEFT is refused.
public struct SubZeroOptions: Sendable, Equatable, Codable {
    public var eps: Float
    /// q, the directions per step (the released method: 1).
    public var directions: Int
    /// r, the rank of U and V.
    public var rank: Int
    /// F: U, V are redrawn every F steps.
    public var refreshEvery: Int

    /// The released `run.py` defaults: r = 8, T₀ = 2000; one direction.
    public init(eps: Float = 1e-3, directions: Int = 1, rank: Int = 8, refreshEvery: Int = 2000) {
        self.eps = eps
        self.directions = directions
        self.rank = rank
        self.refreshEvery = refreshEvery
    }

    enum CodingKeys: String, CodingKey {
        case eps, directions, rank
        case refreshEvery = "refresh_every"
    }
}

extension SubZeroOptions: ZOOptimizerOptions, LowRankOptions {
    public static let spec = OptimizerSpec.onLowRankProbe(
        "subzero",
        "SubZero: directions √(mn)/r·U z0 Vᵀ with orthonormal U, V (QR) redrawn every --refresh-every steps, the 2q members in one forward",
        flags: [.init("--refresh-every", "refresh_every", \Self.refreshEvery)],
        decay: "the released SGD has no decay and the low-rank update has no decay term",
        defaults: { SubZeroOptions(eps: $0) }, make: { try SubZero(model: $1, set: $2, options: $0) })

    public func validate() throws {
        try Self.validateLowRank(directions: directions, rank: rank)
        guard refreshEvery >= 1 && refreshEvery <= Int(UInt32.max) else {
            throw OptimizerOptionError(Self.self, "refresh_every", "must be in 1...\(UInt32.max) steps (got \(refreshEvery))")
        }
    }
}

public final class SubZero: ZOOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: SubZeroOptions
    public let probe: LowRankProbe
    let basis: SubspaceBasis

    public init(model: CausalLM, set: TrainableSet, options: SubZeroOptions) throws {
        try options.validate()
        self.set = set
        self.options = options
        do {
            probe = try LowRankProbe(model: model, set: set, directions: options.directions, rank: options.rank, eps: options.eps)
        } catch let e as BackendError {
            throw BackendError("subzero: \(e)")
        }
        basis = try SubspaceBasis(probe.directions)
        probe.directions.rule = basis
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 * options.directions }
    public var passesPerStep: Double { 1 }
    /// U and V of every covered matrix (regenerable from the seed: a cache, not history).
    public var stateBytes: Int { basis.bytes }
    public func resetState() { basis.windowSeed = nil }
    /// The update's GEMMs, the U z0 products, and the QRs amortised over F steps.
    public var matrixFlopsPerStep: Double {
        let (q, r) = (Double(options.directions), Double(options.rank))
        return probe.directions.entries.reduce(0) { sum, e in
            let (m, n) = (Double(e.tensor.shape[0]), Double(e.tensor.shape[1]))
            return sum + 2 * m * n * q * r + 2 * m * r * r * q + 4 * (m + n) * r * r / Double(options.refreshEvery)
        }
    }

    public func step(_ c: StepContext) throws -> StepOutcome {
        let seed = stepSeed(runSeed: c.runSeed, step: c.step, direction: 0)
        try basis.use(window: stepSeed(runSeed: c.runSeed, step: c.step / options.refreshEvery * options.refreshEvery, direction: 0))
        return try probe.step(c, seed: seed) { try probe.update(seed: seed, g: $0, lr: c.lr) }
    }

    /// From step 0: a window's bases from its first step's record seed, then the update call.
    public func replay(_ records: [ZORecord]) {
        for (r, g) in recordsByStep(records) {
            let t = Int(r.step)
            do {
                if t % options.refreshEvery == 0 { try basis.use(window: r.seed) }
                guard basis.windowSeed != nil else {
                    fatalError("subzero replay of step \(t + 1): the first step of its window was not replayed")
                }
                try probe.update(seed: r.seed, g: g, lr: r.lr)
            } catch {
                fatalError("subzero replay of step \(t + 1): \(error)")
            }
        }
    }
}

/// SubZero's factors: U, V per covered matrix for the current window (Uᵀ: r × m, Vᵀ: r × n, f32),
/// A_kᵀ = √(mn/r)·s_k·z0_kᵀUᵀ and B_kᵀ = Vᵀ for every k.
final class SubspaceBasis: LowRankFactorRule {
    /// The bases' Philox stream ("SZ"): U's normals are elements [0, m·r), V's [m·r, (m + n)·r).
    static let basisStream: UInt32 = 0x535A_0001
    unowned let directions: LowRankDirections
    let uT: [Tensor]
    let vT: [Tensor]
    /// z0_k, all k (q·r²).
    let z0: Tensor
    /// The seed of the window whose bases uT, vT hold (nil: none yet).
    var windowSeed: UInt64?
    /// Tests: z0_k (row-major r × r, all k) of entry i for a step seed, instead of the stream.
    var z0Source: ((_ entry: Int, _ seed: UInt64) -> [Float])?

    init(_ d: LowRankDirections) throws {
        directions = d
        let be = d.backend, r = d.rank
        uT = try d.entries.map { try be.allocate([r, $0.tensor.shape[0]], dtype: .f32, tag: .optimizer) }
        vT = try d.entries.map { try be.allocate([r, $0.tensor.shape[1]], dtype: .f32, tag: .optimizer) }
        z0 = try be.allocate([d.directions * r * r], dtype: .f32, tag: .scratch)
    }

    var bytes: Int { (uT + vT).reduce(0) { $0 + $1.bytes } }

    /// Makes the bases those of the window starting at the step with seed `seed` (QR when it changes).
    func use(window seed: UInt64) throws {
        guard windowSeed != seed else { return }
        let d = directions, be = d.backend, r = d.rank
        for (i, e) in d.entries.enumerated() {
            let (m, n) = (e.tensor.shape[0], e.tensor.shape[1])
            let normals = try be.allocate([(m + n) * r], dtype: .f32, tag: .scratch, zeroed: false)
            be.fillNormal(normals, first: 0, seed: seed, tensorId: e.tensorId, stream: Self.basisStream, scale: 1)
            let host = be.toHost(normals).map(Double.init)
            // The normals are read as row-major (m × r) then (n × r); Q's columns go out transposed.
            for (side, (rows, offset)) in [(uT[i], (m, 0)), (vT[i], (n, m * r))] {
                let q = orthonormalColumns(Array(host[offset..<(offset + rows * r)]), rows: rows, cols: r)
                let t = (0..<(r * rows)).map { j in Float(q[(j % rows) * r + j / rows]) }
                t.withUnsafeBytes { be.copy(side, fromHost: $0) }
            }
        }
        windowSeed = seed
    }

    func fill(_ d: LowRankDirections, _ i: Int, seed: UInt64, aT: Tensor, bT: Tensor, scales: [Float]?) {
        precondition(windowSeed != nil, "subzero: the bases are set before any probe or update")
        let be = d.backend, e = d.entries[i], r = d.rank
        let (m, n) = (e.tensor.shape[0], e.tensor.shape[1])
        let c = (Double(m) * Double(n) / Double(r)).squareRoot()
        fillZ0(i, seed: seed)
        for k in 0..<d.directions {
            let z = z0.flatSlice(k * r * r, r * r).reshaped([r, r])
            // A_kᵀ = c·s_k·(U z0_k)ᵀ = c·s_k·z0_kᵀ Uᵀ (r × m).
            be.matmul(aT.flatSlice(k * r * m, r * m).reshaped([r, m]), z, transposeA: true, uT[i], transposeB: false,
                      alpha: Float(c) * (scales?[k] ?? 1), beta: 0)
            be.copy(bT.flatSlice(k * r * n, r * n).reshaped([r, n]), from: vT[i])
        }
    }
}

extension SubspaceBasis {
    /// z0_k of entry i for step seed `seed`, all k, into `z0`.
    func fillZ0(_ i: Int, seed: UInt64) {
        let be = directions.backend
        if let z0Source {
            z0Source(i, seed).withUnsafeBytes { be.copy(z0, fromHost: $0) }
        } else {
            be.fillNormal(z0, first: 0, seed: seed, tensorId: directions.entries[i].tensorId, stream: ZT_STREAM_LOWRANK, scale: 1)
        }
    }
}

extension SubZero {
    /// `zotune stream --subzero` (a PyTorch reference builds E_k itself from these): of covered
    /// matrix `i`, U (m × r) and V (n × r) row-major as the QR gives them for a window whose first
    /// step has seed `window`, and z0_k of step seed `seed` (q·r × r: rows k·r ..< (k+1)·r are z0_k).
    /// Sets the bases to that window, as a step of it would.
    public func hostFactors(_ i: Int, window: UInt64, seed: UInt64) throws -> (u: [Float], v: [Float], z0: [Float]) {
        try basis.use(window: window)
        let be = probe.directions.backend, r = options.rank
        func untransposed(_ t: Tensor) -> [Float] {
            let h = be.toHost(t), rows = t.shape[1]
            return (0..<(rows * r)).map { j in h[(j % r) * rows + j / r] }
        }
        basis.fillZ0(i, seed: seed)
        return (untransposed(basis.uT[i]), untransposed(basis.vT[i]), be.toHost(basis.z0))
    }
}

/// The Q factor (rows × cols, row-major, orthonormal columns) of the Householder QR of `a`
/// (rows × cols, row-major, rows ≥ cols), in Double with a fixed order of operations, each column
/// signed so that R's diagonal is positive: Q is then the unique thin Q of a full-rank `a`.
func orthonormalColumns(_ a: [Double], rows m: Int, cols r: Int) -> [Double] {
    precondition(m >= r && a.count == m * r, "QR of a \(m) × \(r) matrix")
    var x = a
    var vs: [[Double]] = [], signs: [Double] = []
    for j in 0..<r {
        var v = (j..<m).map { x[$0 * r + j] }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        // Reflect x_j onto −sign(x_jj)·‖x_j‖·e_j (no cancellation); R_jj = that value.
        let alpha = v[0] >= 0 ? -norm : norm
        v[0] -= alpha
        let vv = v.reduce(0) { $0 + $1 * $1 }
        signs.append(alpha < 0 ? -1 : 1)
        vs.append(v)
        guard vv > 0 else { continue }
        for c in j..<r {
            var dot = 0.0
            for p in j..<m { dot += v[p - j] * x[p * r + c] }
            let f = 2 * dot / vv
            for p in j..<m { x[p * r + c] -= f * v[p - j] }
        }
    }
    // Q = H_0 H_1 … H_{r−1} [I_r; 0], applied right to left, then column j times sign(R_jj).
    var q = [Double](repeating: 0, count: m * r)
    for j in 0..<r { q[j * r + j] = 1 }
    for j in stride(from: r - 1, through: 0, by: -1) {
        let v = vs[j], vv = v.reduce(0) { $0 + $1 * $1 }
        guard vv > 0 else { continue }
        for c in 0..<r {
            var dot = 0.0
            for p in j..<m { dot += v[p - j] * q[p * r + c] }
            let f = 2 * dot / vv
            for p in j..<m { q[p * r + c] -= f * v[p - j] }
        }
    }
    for p in 0..<m { for c in 0..<r { q[p * r + c] *= signs[c] } }
    return q
}
