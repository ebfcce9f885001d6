import Foundation
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

/// q low-rank directions per matrix, E_k = A_k B_kᵀ/√r (ZO-FRONTIER §9.2, docs/optimizers.md
/// "Batched low-rank probes"): A_k (rows × r) and B_k (cols × r) are standard normals of the
/// Philox stream (seed, tensor id, ZT_STREAM_LOWRANK), regenerated whenever they are needed and
/// never kept. 1/√r (EGGROLL's scaling) makes E‖E_k‖²_F = rows·cols, the squared length of a
/// full-rank z, so ε means what it means for MeZO, and E[⟨G, E⟩E] = G: g·E is unbiased without a
/// rank-dependent factor in η (LOZO's released code has none, giving r·G; its paper's 1/r gives G
/// only because it leaves the probe unscaled).
public final class LowRankDirections: @unchecked Sendable {
    public let entries: [TrainableSet.Entry]
    public let directions: Int
    public let rank: Int
    let backend: any Backend
    /// Tests: the factors (A_k row-major rows × r, B_k cols × r) of entry `i`, direction k, instead of the stream.
    var factorSource: ((_ entry: Int, _ direction: Int) -> (a: [Float], b: [Float]))?
    /// Tests: as `factorSource`, also told A's key (the step seed) and B's (`windowSeed` or the step's).
    var keyedFactorSource: ((_ entry: Int, _ direction: Int, _ aSeed: UInt64, _ bSeed: UInt64) -> (a: [Float], b: [Float]))?
    /// LOZO: B_k keyed by this seed (the first step of its window, LOZO.swift) instead of the step's,
    /// so B stays fixed across the window while A_k is fresh each step. nil (lowrank-spsa): the
    /// step's seed, the stream layout below unchanged.
    public var windowSeed: UInt64?
    /// SubZero: a rule that fills the factors itself (SubZero.swift); nil: the Philox factors.
    var rule: (any LowRankFactorRule)?

    init(entries: [TrainableSet.Entry], directions: Int, rank: Int, backend: any Backend) throws {
        guard directions >= 1 && directions <= 1 << 20 else { throw BackendError("low-rank directions: q must be in 1…\(1 << 20) (got \(directions))") }
        guard rank >= 1 else { throw BackendError("low-rank directions: the rank must be ≥ 1 (got \(rank))") }
        for e in entries {
            guard e.tensor.rank == 2 else { throw BackendError("low-rank directions: \(e.name) is not a matrix (shape \(e.tensor.shape))") }
            guard rank <= min(e.tensor.shape[0], e.tensor.shape[1]) else {
                throw BackendError("low-rank directions: rank \(rank) exceeds the smaller side of \(e.name) \(e.tensor.shape)")
            }
        }
        self.entries = entries
        self.directions = directions
        self.rank = rank
        self.backend = backend
    }

    /// Elements of one factor pair set (all q directions) of the largest matrix: the scratch size.
    var factorElements: Int { entries.map { directions * rank * ($0.tensor.shape[0] + $0.tensor.shape[1]) }.max() ?? 0 }

    /// A_kᵀ into rows [k·r, (k+1)·r) of aT (q·r × rows) and B_kᵀ into bT (q·r × cols), A_k scaled by
    /// scales[k] (nil: 1). Direction k is elements [k·r·(rows+cols), …) of the stream, A_kᵀ first
    /// (zt_philox.h), so each direction is a pure function of (seed, tensor, k).
    /// B_k comes from `bSeed` ?? `windowSeed` ?? `seed` at the same offset (LOZO); a `rule` replaces all of this.
    func fill(_ i: Int, seed: UInt64, aT: Tensor, bT: Tensor, scales: [Float]? = nil, bSeed: UInt64? = nil) {
        if let rule {
            rule.fill(self, i, seed: seed, aT: aT, bT: bT, scales: scales)
            return
        }
        let e = entries[i], (rows, cols, r) = (e.tensor.shape[0], e.tensor.shape[1], rank)
        let bKey = bSeed ?? windowSeed ?? seed
        for k in 0..<directions {
            let a = aT.flatSlice(k * r * rows, r * rows), b = bT.flatSlice(k * r * cols, r * cols)
            let keyed = keyedFactorSource.map { source in { source(i, k, seed, bKey) } }
            if let source = keyed ?? factorSource.map({ source in { source(i, k) } }) {
                let (ha, hb) = source(), s = scales?[k] ?? 1
                precondition(ha.count == rows * r && hb.count == cols * r, "factor source shapes")
                let at = (0..<(r * rows)).map { j in ha[(j % rows) * r + j / rows] * s }
                let bt = (0..<(r * cols)).map { j in hb[(j % cols) * r + j / cols] }
                at.withUnsafeBytes { backend.copy(a, fromHost: $0) }
                bt.withUnsafeBytes { backend.copy(b, fromHost: $0) }
                continue
            }
            let first = k * r * (rows + cols)
            backend.fillNormal(a, first: first, seed: seed, tensorId: e.tensorId, stream: ZT_STREAM_LOWRANK, scale: scales?[k] ?? 1)
            backend.fillNormal(b, first: first + r * rows, seed: bKey, tensorId: e.tensorId, stream: ZT_STREAM_LOWRANK, scale: 1)
        }
    }

    /// (aT, bT) of entry `i` on the host: A_kᵀ is aT[k·r·rows ..< (k+1)·r·rows] (r × rows), B_kᵀ likewise.
    public func hostFactors(_ i: Int, seed: UInt64, bSeed: UInt64? = nil) throws -> (aT: [Float], bT: [Float]) {
        let e = entries[i], (rows, cols) = (e.tensor.shape[0], e.tensor.shape[1])
        let aT = try backend.allocate([directions * rank, rows], tag: .scratch, zeroed: false)
        let bT = try backend.allocate([directions * rank, cols], tag: .scratch, zeroed: false)
        fill(i, seed: seed, aT: aT, bT: bT, bSeed: bSeed)
        return (backend.toHost(aT), backend.toHost(bT))
    }

    /// W ← W − (η/q) Σ_k g_k E_k for every entry: A's blocks generated already scaled by g_k, then one
    /// (rows × q·r)(q·r × cols) GEMM per matrix with α = −η/(q·√r), accumulated into an f32 W
    /// (β = 1); a 16-bit W gets the product through an f32 scratch, rounded once into storage.
    /// A pure function of (seed, g, η): replay is the same call.
    public func update(seed: UInt64, g: [Float], lr: Float) throws {
        precondition(g.count == directions, "one projected gradient per direction")
        try addProducts(alpha: -lr / (Float(directions) * Float(rank).squareRoot())) { i, aT, bT in
            fill(i, seed: seed, aT: aT, bT: bT, scales: g)
        }
    }

    /// W ← W + α·aTᵀ·bT for every entry, `factors(i, aT, bT)` writing aT (q·r × rows) and bT
    /// (q·r × cols) first: the update's one GEMM per matrix (LOZO-M puts its momentum in aT).
    func addProducts(alpha: Float, _ factors: (Int, Tensor, Tensor) throws -> Void) throws {
        guard let widest = entries.map({ $0.tensor.shape[0] + $0.tensor.shape[1] }).max() else { return }
        let buffer = try backend.allocate([directions * rank * widest], tag: .scratch, zeroed: false)
        let delta = try entries.contains { $0.tensor.dtype != .f32 }
            ? backend.allocate([entries.filter { $0.tensor.dtype != .f32 }.map(\.tensor.count).max()!], tag: .scratch, zeroed: false) : nil
        for (i, e) in entries.enumerated() {
            let (rows, cols, qr) = (e.tensor.shape[0], e.tensor.shape[1], directions * rank)
            let aT = buffer.flatSlice(0, qr * rows).reshaped([qr, rows])
            let bT = buffer.flatSlice(qr * rows, qr * cols).reshaped([qr, cols])
            try factors(i, aT, bT)
            if e.tensor.dtype == .f32 {
                backend.matmul(e.tensor, aT, transposeA: true, bT, transposeB: false, alpha: alpha, beta: 1)
            } else {
                let d = delta!.flatSlice(0, rows * cols).reshaped([rows, cols])
                backend.matmul(d, aT, transposeA: true, bT, transposeB: false, alpha: 1, beta: 0)
                backend.addScaled(e.tensor, d, alpha: alpha)
            }
        }
    }
}

/// Factors that are not plain Philox normals (SubZero's U z0 and V from orthonormal bases): fills
/// A_kᵀ (scaled by scales[k]) and B_kᵀ of entry i for the step seed, as `LowRankDirections.fill`.
protocol LowRankFactorRule: AnyObject {
    func fill(_ d: LowRankDirections, _ i: Int, seed: UInt64, aT: Tensor, bT: Tensor, scales: [Float]?)
}

/// The batched low-rank two-sided probe (ZO-FRONTIER §9.2): the 2q members θ ± εE_k evaluated in
/// ONE forward of 2q·B sequences. θ is never written while probing: per covered linear layer the
/// model's own GEMM X·Wᵀ runs once over all rows (the weight read once, in whatever storage it
/// has), and a forward hook adds ±(ε/√r)(X_member B_k)A_kᵀ to each member's rows in f32. Member 2k
/// is θ + εE_k, member 2k + 1 is θ − εE_k; the batch's B sequences are repeated per member, member
/// after member, so every activation's rows are member-contiguous.
///
/// Which tensors it moves: the matrices of linear layers that see every token row (attention and
/// MLP projections, OPT's project in/out). Held fixed (`heldFixed`): 1-D tensors (norm gains,
/// biases) — a per-member gain or bias is not a shared GEMM, and one forward cannot give each
/// member its own without a per-member norm/bias kernel; gathered embedding tables (and a head
/// tied to one); the head, whose GEMM runs on chunks of rows (`tokenLogProbs`) or on last
/// positions, where a member's rows are not known to the hook. EGGROLL freezes the same tensors in
/// its LLM runs (freeze_nonlora, embeddings and head excluded). A method that must move them
/// probes them apart (e.g. a MeZO pass on the rest).
public final class LowRankProbe: @unchecked Sendable {
    public let model: CausalLM
    public let directions: LowRankDirections
    /// The covered matrices' layers (same order as `directions.entries`).
    public let layers: [LinearLayer]
    /// Trainable tensors the primitive leaves as they are.
    public let heldFixed: [String]
    public let eps: Float

    public init(model: CausalLM, set: TrainableSet, directions q: Int, rank: Int, eps: Float) throws {
        guard eps.isFinite && eps > 0 else { throw BackendError("low-rank probe: ε must be a positive number (got \(eps))") }
        var covered: [TrainableSet.Entry] = [], layers: [LinearLayer] = [], fixed: [String] = []
        let head = model.plan.head.weight, table = model.embeddingTableName
        for e in set.entries {
            if e.tensor.rank == 2, e.name != head, e.name != table, let layer = model.linearLayer(e.name), e.tensor.storageKey != model.weights[head].storageKey {
                guard e.tensor.dtype.isFloat else {
                    throw BackendError("low-rank probe: \(e.name) is stored in GGUF blocks (a frozen base); the low-rank update needs f32, f16 or bf16 storage")
                }
                covered.append(e)
                layers.append(layer)
            } else {
                fixed.append(e.name)
            }
        }
        guard !covered.isEmpty else { throw BackendError("low-rank probe: the trainable set has no linear-layer matrix to perturb") }
        self.model = model
        self.directions = try LowRankDirections(entries: covered, directions: q, rank: rank, backend: model.backend)
        self.layers = layers
        heldFixed = fixed
        self.eps = eps
    }

    /// Members of one probe: 2q.
    public var members: Int { 2 * directions.directions }

    /// Runs `body` with the probe's hook after the model's own (adapters first, as ForwardHookChain
    /// orders them). Every forward of `body` must hold 2q member blocks of equally many sequences,
    /// member after member (member 2k: θ + εE_k, 2k + 1: θ − εE_k).
    public func withProbe<T>(seed: UInt64, _ body: () throws -> T) throws -> T {
        let hook = try Hook(self, seed: seed)
        let saved = model.hook
        model.hook = saved.map { ForwardHookChain([$0, hook]) } ?? hook
        defer { model.hook = saved }
        let result = try body()
        if let e = hook.failure { throw e }
        return result
    }

    /// (ℓ₊ₖ, ℓ₋ₖ) for k = 1…q: each member's mean next-token loss over `batch` (as
    /// `languageModelLoss`), all 2q members from one forward of 2q·B sequences.
    public func probeLanguageModel(seed: UInt64, batch: TokenBatch) throws -> [(plus: Double, minus: Double)] {
        var targets = [Int32](repeating: -1, count: batch.tokenCount)
        var count = 0
        for b in 0..<batch.batch {
            for t in 0..<(batch.length - 1) where batch.mask[b * batch.length + t] != 0 {
                targets[b * batch.length + t] = batch.ids[b * batch.length + t + 1]
                count += 1
            }
        }
        let n = members
        let all = TokenBatch(ids: Array([[Int32]](repeating: batch.ids, count: n).joined()),
                             mask: Array([[UInt8]](repeating: batch.mask, count: n).joined()), batch: n * batch.batch, length: batch.length)
        let lp = try withProbe(seed: seed) { try model.tokenLogProbs(all, targets: Array([[Int32]](repeating: targets, count: n).joined())) }
        let per = batch.tokenCount
        let losses = (0..<n).map { j in -lp[(j * per)..<((j + 1) * per)].reduce(0.0) { $0 + Double($1) } / Double(max(1, count)) }
        return (0..<directions.directions).map { (losses[2 * $0], losses[2 * $0 + 1]) }
    }

    /// g_k = (ℓ₊ₖ − ℓ₋ₖ)/2ε.
    public func projectedGradients(_ losses: [(plus: Double, minus: Double)]) -> [Float] {
        losses.map { Float(($0.plus - $0.minus) / (2 * Double(eps))) }
    }

    /// W ← W − (η/q) Σ_k g_k E_k on the covered matrices (replay: the same call with the recorded
    /// seed and g).
    public func update(seed: UInt64, g: [Float], lr: Float) throws {
        try directions.update(seed: seed, g: g, lr: lr)
    }

    /// One step of an optimizer on the probe (lowrank-spsa, lozo, subzero): the 2q members scored
    /// through `c` (a non-finite loss throws; θ was never written, so nothing moves back), g_k, then
    /// `update(g)`; one record g_k per direction k, all with the step's seed; the reported loss is the
    /// mean of the 2q members'.
    func step(_ c: StepContext, seed: UInt64, update: ([Float]) throws -> Void) throws -> StepOutcome {
        let losses = try c.lowRankProbe(self, seed)
        if let bad = losses.flatMap({ [$0.plus, $0.minus] }).first(where: { !$0.isFinite }) { throw NonFiniteLoss(step: c.step, value: bad) }
        let g = projectedGradients(losses)
        try update(g)
        let records = g.enumerated().map { k, gk in ZORecord(step: UInt32(c.step), direction: UInt16(k), seed: seed, lr: c.lr, values: [gk]) }
        let mean = losses.reduce(0) { $0 + $1.plus + $1.minus } / Double(2 * losses.count)
        return StepOutcome(records: records, loss: mean)
    }

    /// Adds each member's ±(ε/√r)(X B_k)A_kᵀ to the covered layers' outputs.
    final class Hook: ForwardHook {
        unowned let probe: LowRankProbe
        let seed: UInt64
        let index: [String: Int]
        /// A_kᵀ, B_kᵀ of one matrix, all k.
        let factors: Tensor
        /// This forward's token rows per member, and X_pair·B_k of one direction (2·rowsPerMember × r).
        var rowsPerMember = 0
        var side: Tensor?
        var failure: Error?

        init(_ probe: LowRankProbe, seed: UInt64) throws {
            self.probe = probe
            self.seed = seed
            index = Dictionary(probe.directions.entries.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
            factors = try probe.model.backend.allocate([probe.directions.factorElements], tag: .scratch, zeroed: false)
        }

        func forwardBegins(_ batch: TokenBatch) {
            precondition(batch.batch % probe.members == 0, "a probe's forward holds 2q member blocks (\(batch.batch) sequences)")
            rowsPerMember = batch.tokenCount / probe.members
            let need = 2 * rowsPerMember * probe.directions.rank
            if side.map({ $0.count < need }) ?? true {
                side = nil
                do { side = try probe.model.backend.allocate([need], tag: .activations, zeroed: false) } catch { failure = failure ?? error }
            }
        }

        func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {
            guard let i = index[layer.weight] else { return }
            let d = probe.directions, be = probe.model.backend
            let w = d.entries[i].tensor, (rows, cols, r, q) = (w.shape[0], w.shape[1], d.rank, d.directions)
            let m = rowsPerMember
            // (out, in) storage: W = A Bᵀ, so X·Eᵀ = (X B)Aᵀ; GPT-2's (in, out): X·E = (X A)Bᵀ.
            let outIn = layer.layout == .outIn
            let (inDim, outDim) = outIn ? (cols, rows) : (rows, cols)
            precondition(input.count == 2 * q * m * inDim && output.count == 2 * q * m * outDim,
                         "\(layer.weight): the probe's hook saw \(input.count / inDim) rows, not 2q·B·T = \(2 * q * m)")
            let aT = factors.flatSlice(0, q * r * rows), bT = factors.flatSlice(q * r * rows, q * r * cols)
            d.fill(i, seed: seed, aT: aT, bT: bT)
            let (inF, outF) = outIn ? (bT, aT) : (aT, bT)
            guard let side else { return }   // allocation failed: withProbe throws it
            let t = side.flatSlice(0, 2 * m * r).reshaped([2 * m, r])
            let x = input.reshaped([2 * q * m, inDim]), y = output.reshaped([2 * q * m, outDim])
            let s = probe.eps / Float(r).squareRoot()
            for k in 0..<q {
                let fin = inF.flatSlice(k * r * inDim, r * inDim).reshaped([r, inDim])
                let fout = outF.flatSlice(k * r * outDim, r * outDim).reshaped([r, outDim])
                be.matmul(t, x.rows(2 * k * m, 2 * m), transposeA: false, fin, transposeB: true, alpha: 1, beta: 0)
                be.matmul(y.rows(2 * k * m, m), t.rows(0, m), transposeA: false, fout, transposeB: false, alpha: s, beta: 1)
                be.matmul(y.rows((2 * k + 1) * m, m), t.rows(m, m), transposeA: false, fout, transposeB: false, alpha: -s, beta: 1)
            }
        }
    }
}

/// `zotune bench lowrank`: a batched q-direction step (one forward of 2q·B rows + one GEMM per
/// matrix) against q sequential two-sided MeZO steps (2q forwards of B rows + 3q passes over θ)
/// on the same batch, set and machine, with each one's ledger peak against an inference forward's.
public struct LowRankProbeTiming: Sendable {
    public let directions: Int
    public let rank: Int
    public let forwardSeconds: Double
    public let batchedSeconds: Double
    public let sequentialSeconds: Double
    public let inferencePeakBytes: Int
    public let batchedPeakBytes: Int
    public let sequentialPeakBytes: Int
    public var speedup: Double { sequentialSeconds / batchedSeconds }

    public var json: [String: Any] {
        func r(_ x: Double) -> Double { (x * 1e4).rounded() / 1e4 }
        return ["directions": directions, "rank": rank, "forward_s": r(forwardSeconds), "batched_step_s": r(batchedSeconds),
                "sequential_mezo_s": r(sequentialSeconds), "speedup": r(speedup), "inference_peak_bytes": inferencePeakBytes,
                "batched_peak_bytes": batchedPeakBytes, "sequential_peak_bytes": sequentialPeakBytes]
    }

    public static func measure(model: CausalLM, batch: TokenBatch, set: TrainableSet, directions q: Int, rank: Int, eps: Float = 1e-3,
                               lr: Float = 1e-7, repeats: Int) throws -> LowRankProbeTiming {
        let backend = model.backend
        backend.ledger.resetPeaks()
        let forward = try backend.medianSeconds(repeats) { _ = try languageModelLoss(model, batch) }
        let inference = backend.ledger.snapshot.total.peak
        let probe = try LowRankProbe(model: model, set: set, directions: q, rank: rank, eps: eps)
        backend.ledger.resetPeaks()
        var seed: UInt64 = 1
        let batched = try backend.medianSeconds(repeats) {
            let g = probe.projectedGradients(try probe.probeLanguageModel(seed: seed, batch: batch))
            try probe.update(seed: seed, g: g, lr: lr)
            seed += 1
        }
        let batchedPeak = backend.ledger.snapshot.total.peak
        backend.ledger.resetPeaks()
        // MeZO's two-sided step, q times (what MeZO.swift does per direction).
        let sequential = try backend.medianSeconds(repeats) {
            for _ in 0..<q {
                set.perturb(backend, seed: seed, scale: eps)
                let plus = try languageModelLoss(model, batch)
                set.perturb(backend, seed: seed, scale: -2 * eps)
                let minus = try languageModelLoss(model, batch)
                let items = set.entries.map { StreamItem($0.tensor, tensorId: $0.tensorId, decay: 0) }
                backend.restoreUpdate(items, seed: seed, stream: 0, restore: eps, step: lr * Float((plus - minus) / (2 * Double(eps))))
                seed += 1
            }
        }
        return LowRankProbeTiming(directions: q, rank: rank, forwardSeconds: forward, batchedSeconds: batched, sequentialSeconds: sequential,
                                  inferencePeakBytes: inference, batchedPeakBytes: batchedPeak,
                                  sequentialPeakBytes: backend.ledger.snapshot.total.peak)
    }
}

extension LowRankProbe {
    /// (ℓ₊ₖ, ℓ₋ₖ) of a minibatch of labelled examples under `objective`, each member's loss as
    /// `Scorer.score` gives it: each scoring path (one-token candidates read at the prefix's end, as
    /// SST-2's; prefix + continuation) is one forward of 2q member blocks, so an SST-2 minibatch is
    /// one forward of 2q·B sequences. Generation examples are not probed this way.
    public func probe(seed: UInt64, examples: [TaskExample], scorer: Scorer, objective: ObjectiveKind) throws -> [(plus: Double, minus: Double)] {
        guard !examples.contains(where: \.isGeneration) else {
            throw BackendError("low-rank probe: generation examples cannot be probed in one batched forward (use a classification or LM-loss task)")
        }
        let n = members
        var scores = [[[Double]]](repeating: examples.map { [Double](repeating: 0, count: $0.candidates.count) }, count: n)
        var single: [(example: Int, ids: [Int32], tokens: [Int32])] = []
        var multi: [(example: Int, candidate: Int, ids: [Int32], scored: Int)] = []
        for (e, ex) in examples.enumerated() {
            let conts = ex.candidates.map { scorer.encode($0.continuation, special: false) }
            if ex.candidates.count > 1, conts.allSatisfy({ $0.count == 1 }), Set(ex.candidates.map(\.prefix)).count == 1 {
                var prefix = scorer.truncateLeft(scorer.encode(ex.candidates[0].prefix, special: true), to: scorer.maxLength - 1)
                if prefix.isEmpty { prefix = [scorer.tokenizer.bosId ?? scorer.padId] }
                single.append((e, prefix, conts.map { $0[0] }))
            } else {
                for (c, cand) in ex.candidates.enumerated() {
                    let s = scorer.sequence(cand)
                    multi.append((e, c, s.ids, s.scored))
                }
            }
        }
        if !single.isEmpty {
            let batch = TokenBatch.leftPadded(Array(repeatElement(single.map(\.ids), count: n).joined()), padId: scorer.padId)
            let lp = try withProbe(seed: seed) {
                try model.lastTokenLogProbs(batch, candidates: Array(repeatElement(single.map(\.tokens), count: n).joined()))
            }
            for j in 0..<n {
                for (b, job) in single.enumerated() {
                    for c in job.tokens.indices { scores[j][job.example][c] = Double(lp[j * single.count + b][c]) }
                }
            }
        }
        if !multi.isEmpty {
            let batch = TokenBatch.leftPadded(Array(repeatElement(multi.map(\.ids), count: n).joined()), padId: scorer.padId)
            var targets = [Int32](repeating: -1, count: batch.tokenCount)
            for (b, s) in Array(repeatElement(multi, count: n).joined()).enumerated() {
                let offset = batch.length - s.ids.count   // left padding
                for k in (s.ids.count - s.scored)..<s.ids.count { targets[b * batch.length + offset + k - 1] = s.ids[k] }
            }
            let lp = try withProbe(seed: seed) { try model.tokenLogProbs(batch, targets: targets) }
            for j in 0..<n {
                for (i, s) in multi.enumerated() {
                    let b = j * multi.count + i
                    scores[j][s.example][s.candidate] = lp[(b * batch.length)..<((b + 1) * batch.length)].reduce(0.0) { $0 + Double($1) } / Double(s.scored)
                }
            }
        }
        let losses = scores.map { Scorer.batchScore(examples, scores: $0, objective: objective).loss }
        return (0..<directions.directions).map { (losses[2 * $0], losses[2 * $0 + 1]) }
    }
}

/// Records grouped by step (in order): each step's first record and its g_1..g_q.
func recordsByStep(_ records: [ZORecord]) -> [(ZORecord, [Float])] {
    var out: [(ZORecord, [Float])] = []
    var i = 0
    while i < records.count {
        var j = i + 1
        while j < records.count && records[j].step == records[i].step { j += 1 }
        out.append((records[i], records[i..<j].map(\.projectedGrad)))
        i = j
    }
    return out
}
