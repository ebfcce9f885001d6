import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// The batched low-rank two-sided step (ZO-FRONTIER §9.2) against closed forms: the worked q = 2,
/// r = 1 quadratic, the expectation of g·E over fresh directions, and 2q ordinary forwards of the
/// tiny Llama with E_k written into θ.
final class LowRankProbeTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    // ZO-FRONTIER §9.2: W = [[1,2],[3,4]], f = ½‖W‖², E₁ = (1,0)(1,0)ᵀ, E₂ = (0,1)(1,1)ᵀ: the central
    // difference of a quadratic is exact, g = ⟨W, E_k⟩ = (1, 7), and with η = 0.1 the update path
    // gives W₁ = W − (η/2)(E₁ + 7E₂) = [[0.95, 2], [2.65, 3.65]].
    func testWorkedQuadraticOfTheFrontierNotes() throws {
        let w = try backend.tensor([1, 2, 3, 4] as [Float], shape: [2, 2], tag: .weights)
        let d = try LowRankDirections(entries: [TrainableSet.Entry(name: "w", tensor: w, tensorId: 1, decays: true)],
                                      directions: 2, rank: 1, backend: backend)
        let a: [[Float]] = [[1, 0], [0, 1]], b: [[Float]] = [[1, 0], [1, 1]]
        d.factorSource = { _, k in (a[k], b[k]) }
        let w0: [Double] = [1, 2, 3, 4], eps = 0.5
        func f(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 } / 2 }
        let g = (0..<2).map { k -> Float in
            let e = (0..<4).map { Double(a[k][$0 / 2] * b[k][$0 % 2]) }
            return Float((f(zip(w0, e).map { $0 + eps * $1 }) - f(zip(w0, e).map { $0 - eps * $1 })) / (2 * eps))
        }
        XCTAssertEqual(g, [1, 7])
        try d.update(seed: 0, g: g, lr: 0.1)
        // Products g·a·b are small integers (exact); α = −0.05 is rounded once and each element once
        // more when added: ≤ ½ulp(0.35) + ½ulp(4) < ulp(4) = 4.8e-7.
        for (x, y) in zip(backend.toHost(w), [0.95, 2, 2.65, 3.65]) { XCTAssertEqual(Double(x), y, accuracy: 4.8e-7) }
    }

    // E[⟨G, E⟩E] = G for E = ABᵀ/√r with A, B standard normal (ZO-FRONTIER §1 gives r·G without the
    // 1/√r): the update path over q fresh directions with g_k = ⟨G, E_k⟩ (a linear loss, whose
    // central difference is exact) moves W by −η·mean(g·E) → −ηG. Bound per entry: with
    // E‖GB‖⁴_F ≤ (r² + 2r)‖G‖⁴ and E E_ij⁴ = 3(1 + 2/r), Cauchy–Schwarz gives
    // E[g²E_ij²] ≤ 3(1 + 2/r)‖G‖²_F, so the mean's std is ≤ √(3(1 + 2/r))‖G‖_F/√q; 5 of those
    // (0.17 here) still fails a wrong convention: r·G or G/r move entries up to 3 by ≥ 1.5.
    func testMeanOfLowRankEstimatesIsTheGradient() throws {
        let (rows, cols, r, q) = (3, 4, 2, 1 << 17)
        let gradient: [Double] = [1, -2, 0.5, 3, 0, 1, -1, 2, 2, 0, -0.5, 1]
        let w = try backend.allocate([rows, cols], tag: .weights)
        let d = try LowRankDirections(entries: [TrainableSet.Entry(name: "w", tensor: w, tensorId: 77, decays: true)],
                                      directions: q, rank: r, backend: backend)
        let seed: UInt64 = 0x10E5_EED
        let (aT, bT) = try d.hostFactors(0, seed: seed)
        let scale = 1 / Double(r).squareRoot()
        var g = [Float](repeating: 0, count: q)
        for k in 0..<q {
            var s = 0.0
            for l in 0..<r {
                let ra = (k * r + l) * rows, rb = (k * r + l) * cols
                for i in 0..<rows {
                    var row = 0.0
                    for j in 0..<cols { row += gradient[i * cols + j] * Double(bT[rb + j]) }
                    s += Double(aT[ra + i]) * row
                }
            }
            g[k] = Float(s * scale)
        }
        try d.update(seed: seed, g: g, lr: 1)
        let norm = gradient.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let bound = 5 * (3 * (1 + 2 / Double(r))).squareRoot() * norm / Double(q).squareRoot()
        for (x, want) in zip(backend.toHost(w), gradient) { XCTAssertEqual(-Double(x), want, accuracy: bound) }
    }

    // One forward of 2q·B rows gives the losses of 2q ordinary forwards of θ ± εE_k written into θ
    // (E_k built in Double from the same factors, rounded once into f32), and leaves θ's bits alone.
    // Bound: each is an f32 forward of the same function; the tiny Llama's f32 logits stay within
    // 6e-6 of torch's on every kernel set (ForwardParityTests), a mean NLL moves by ≤ 2·max|Δlogit|,
    // so two forwards differ by ≤ 2·2·6e-6 = 2.4e-5; θ + εE rounded to f32 moves each weight by
    // ≤ 2⁻²⁴|w|, far below that. g = Δℓ/2ε then agrees to 2·2.4e-5/(2ε).
    func testBatchedProbeEqualsSequentialInPlaceProbes() throws {
        let lm = try tinyModel()
        let set = TrainableSet.full(lm)
        let (q, r, eps): (Int, Int, Float) = (2, 2, 1e-2)
        let probe = try LowRankProbe(model: lm, set: set, directions: q, rank: r, eps: eps)
        XCTAssertEqual(probe.directions.entries.count, 14)   // 7 linears × 2 blocks; embeddings, head, norms held fixed
        XCTAssertEqual(probe.heldFixed.count, set.entries.count - 14)
        let batch = randomTokenBatch(batch: 2, length: 8, vocab: lm.config.vocabSize, seed: 7)
        let seed: UInt64 = 0xB47C_4ED
        let before = set.contentHash(backend)
        let counter = ForwardCounter()
        lm.hook = counter
        let batched = try probe.probeLanguageModel(seed: seed, batch: batch)
        lm.hook = nil
        XCTAssertEqual(counter.rows, [2 * q * batch.tokenCount], "all 2q members in one forward of 2q·B·T rows")
        XCTAssertEqual(set.contentHash(backend), before, "probing must not write θ")

        let sequential = try inPlaceProbes(probe, seed: seed) { try languageModelLoss(lm, batch) }
        let tolerance = 2.4e-5
        var spread = 0.0
        for k in 0..<q {
            XCTAssertEqual(batched[k].plus, sequential[k].plus, accuracy: tolerance)
            XCTAssertEqual(batched[k].minus, sequential[k].minus, accuracy: tolerance)
            spread = max(spread, abs(sequential[k].plus - sequential[k].minus))
            let g = probe.projectedGradients([batched[k]])[0]
            XCTAssertEqual(Double(g), (sequential[k].plus - sequential[k].minus) / (2 * Double(eps)), accuracy: 2 * tolerance / (2 * Double(eps)))
        }
        // The members must differ far beyond the bound, or a hook that added nothing would pass.
        XCTAssertGreaterThan(spread, 20 * tolerance)
    }

    // The classification path: examples with one-token candidates (read at the prefix's end, as
    // SST-2's) and with multi-token continuations run as one forward per scoring path, each of 2q member
    // blocks, and give each member the cross-entropy `Scorer.score` gives θ ± εE_k written into θ.
    // Bound: a candidate's log-prob moves by ≤ 2·max|Δlogit| (2·6e-6, as above), a two-way
    // cross-entropy by ≤ 2 of those: 2.4e-5 per forward, 4.8e-5 between two.
    func testBatchedClassificationProbeEqualsSequentialScores() throws {
        let lm = try tinyModel()
        let scorer = Scorer(model: lm, tokenizer: try tokenizer())
        // tinySplits' " terrible"/" great" are several tokens in the tiny tokenizer; " the"/" a" are one.
        var examples = tinySplits().train
        examples += ["a slow burn", "two hours I will not get back", "worth it"].enumerated().map { i, s in
            TaskExample(id: "s\(i)", candidates: [Candidate(prefix: s + " It was", continuation: " the"),
                                                 Candidate(prefix: s + " It was", continuation: " a")], label: i % 2)
        }
        let (q, r, eps): (Int, Int, Float) = (2, 1, 5e-2)
        let probe = try LowRankProbe(model: lm, set: TrainableSet.full(lm), directions: q, rank: r, eps: eps)
        let seed: UInt64 = 0x5C0_4E
        let counter = ForwardCounter()
        lm.hook = counter
        let batched = try probe.probe(seed: seed, examples: examples, scorer: scorer, objective: .crossEntropy)
        lm.hook = nil
        XCTAssertEqual(counter.rows.count, 2, "one forward per scoring path")
        for rows in counter.rows { XCTAssertEqual(rows % (2 * q), 0) }
        let sequential = try inPlaceProbes(probe, seed: seed) { try scorer.score(examples, objective: .crossEntropy).loss }
        let tolerance = 4.8e-5
        var spread = 0.0
        for k in 0..<q {
            XCTAssertEqual(batched[k].plus, sequential[k].plus, accuracy: tolerance)
            XCTAssertEqual(batched[k].minus, sequential[k].minus, accuracy: tolerance)
            spread = max(spread, abs(sequential[k].plus - sequential[k].minus))
        }
        XCTAssertGreaterThan(spread, 20 * tolerance)
    }

    /// (ℓ₊ₖ, ℓ₋ₖ) of ordinary forwards with θ ± εE_k written into the covered matrices: E_k built in
    /// Double from the probe's factors and rounded once into f32; θ restored after each.
    func inPlaceProbes(_ probe: LowRankProbe, seed: UInt64, store: ((Tensor, [Float]) -> Void)? = nil,
                       loss: () throws -> Double) throws -> [(plus: Double, minus: Double)] {
        let store = store ?? { t, v in v.withUnsafeBytes { self.backend.copy(t, fromHost: $0) } }
        let d = probe.directions, r = d.rank, eps = Double(probe.eps)
        let saved = d.entries.map { backend.toHost($0.tensor) }
        let factors = try d.entries.indices.map { try d.hostFactors($0, seed: seed) }
        return try (0..<d.directions).map { k in
            let pair = try [1.0, -1.0].map { sign -> Double in
                for (i, e) in d.entries.enumerated() {
                    let (rows, cols) = (e.tensor.shape[0], e.tensor.shape[1])
                    var moved = saved[i]
                    for p in 0..<rows {
                        for c in 0..<cols {
                            var s = 0.0
                            for l in 0..<r { s += Double(factors[i].aT[(k * r + l) * rows + p]) * Double(factors[i].bT[(k * r + l) * cols + c]) }
                            moved[p * cols + c] = Float(Double(saved[i][p * cols + c]) + sign * eps * s / Double(r).squareRoot())
                        }
                    }
                    store(e.tensor, moved)
                }
                defer { for (i, e) in d.entries.enumerated() { store(e.tensor, saved[i]) } }
                return try loss()
            }
            return (pair[0], pair[1])
        }
    }

    // A bf16 base probed as stored: the batched g equals the g of f32 in-place probes of the same
    // bf16 values (the reference: θ + εE rounded to f32, 2⁻²⁴ relative) within the bound above,
    // 2·2.4e-5/(2ε), while in-place probes of the bf16 tensors (θ + εE rounded to bf16, 2⁻⁹
    // relative: ε = 1e-3 moves weights of ~0.02 by less than their bf16 spacing) are further off
    // (measured: batched within 1.5e-4 of g ≈ (−2.04, −12.07), in place off by 1.09 and 2.18).
    func testBF16BaseBatchedProbeIsCloserThanInPlaceProbes() throws {
        let ckpt = try HFCheckpoint(path: modelFixtures.appendingPathComponent("models/llama").path)
        let half = try CausalLM(config: ckpt.config, reader: ckpt, backend: backend, dtype: .bf16)
        let full = try tinyModel()
        let halfSet = TrainableSet.full(half), fullSet = TrainableSet.full(full)
        for (h, f) in zip(halfSet.entries, fullSet.entries) { backend.toHost(h.tensor).withUnsafeBytes { backend.copy(f.tensor, fromHost: $0) } }
        let (q, eps): (Int, Float) = (2, 1e-3)
        let halfProbe = try LowRankProbe(model: half, set: halfSet, directions: q, rank: 1, eps: eps)
        let fullProbe = try LowRankProbe(model: full, set: fullSet, directions: q, rank: 1, eps: eps)
        let batch = randomTokenBatch(batch: 2, length: 8, vocab: half.config.vocabSize, seed: 11)
        let seed: UInt64 = 0xBF16
        let reference = fullProbe.projectedGradients(try inPlaceProbes(fullProbe, seed: seed) { try languageModelLoss(full, batch) })
        let batched = halfProbe.projectedGradients(try halfProbe.probeLanguageModel(seed: seed, batch: batch))
        func bf16(_ x: Float) -> UInt16 { let b = x.bitPattern; return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16) }
        let inPlace = halfProbe.projectedGradients(try inPlaceProbes(halfProbe, seed: seed, store: { t, v in
            v.map(bf16).withUnsafeBytes { self.backend.copy(t, fromHost: $0) }
        }) { try languageModelLoss(half, batch) })
        let bound = 2 * 2.4e-5 / (2 * Double(eps))
        var batchedError = 0.0, inPlaceError = 0.0
        for k in 0..<q {
            XCTAssertEqual(Double(batched[k]), Double(reference[k]), accuracy: bound)
            batchedError += abs(Double(batched[k] - reference[k]))
            inPlaceError += abs(Double(inPlace[k] - reference[k]))
        }
        XCTAssertLessThan(batchedError, inPlaceError, "batched \(batched), in place \(inPlace), reference \(reference)")
    }

    // The update regenerates the same directions from (seed, g): replaying it on the starting
    // weights gives the trained bits, and it moves only the covered matrices.
    func testUpdateReplaysBitForBitAndMovesOnlyCoveredMatrices() throws {
        let lm = try tinyModel()
        let set = TrainableSet.full(lm)
        let probe = try LowRankProbe(model: lm, set: set, directions: 3, rank: 1, eps: 1e-3)
        let start = weights(lm)
        let g: [Float] = [0.5, -1.25, 2]
        try probe.update(seed: 99, g: g, lr: 1e-2)
        let trained = weights(lm)
        for name in probe.heldFixed { XCTAssertEqual(trained[name], start[name], name) }
        for e in probe.directions.entries { XCTAssertNotEqual(trained[e.name], start[e.name], e.name) }
        for e in set.entries { start[e.name]!.withUnsafeBytes { backend.copy(e.tensor, fromHost: $0) } }
        try probe.update(seed: 99, g: g, lr: 1e-2)
        XCTAssertTrue(weights(lm) == trained)
    }

    func testBadSettingsAreOneLine() throws {
        let lm = try tinyModel()
        let set = TrainableSet.full(lm)
        XCTAssertThrowsError(try LowRankProbe(model: lm, set: set, directions: 0, rank: 1, eps: 1e-3)) {
            XCTAssertTrue("\($0)".contains("q must be"), "\($0)")
        }
        XCTAssertThrowsError(try LowRankProbe(model: lm, set: set, directions: 2, rank: 40, eps: 1e-3)) {
            XCTAssertTrue("\($0)".contains("rank 40 exceeds"), "\($0)")
        }
        XCTAssertThrowsError(try LowRankProbe(model: lm, set: set, directions: 2, rank: 1, eps: 0)) {
            XCTAssertTrue("\($0)".contains("ε must be"), "\($0)")
        }
    }
}

/// The token rows of every forward the model runs (the model calls `forwardBegins` once per forward).
final class ForwardCounter: ForwardHook {
    var rows: [Int] = []
    func forwardBegins(_ batch: TokenBatch) { rows.append(batch.tokenCount) }
    func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {}
}
