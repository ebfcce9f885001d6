import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels
import ZOTuneTraining

/// The MeZO step and candidate scoring on a tiny random Llama (from the model fixtures) with a
/// small trained BPE tokenizer, against direct computations.
final class MeZOTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    // One step against independent forwards at θ ± εz built on the host in double precision.
    func testOneStepEqualsDirectComputation() throws {
        let lm = try tinyModel()
        let batch = randomTokenBatch(batch: 2, length: 6, vocab: lm.config.vocabSize)
        let set = TrainableSet.full(lm)
        let theta = weights(lm)
        let (eps, lr): (Float, Float) = (1e-2, 1e-3)
        let mezo = MeZO(set: set, options: MeZOOptions(eps: eps), backend: backend)
        let result = try mezo.step(StepContext(step: 0, runSeed: 42, lr: lr, loss: { try languageModelLoss(lm, batch) }))
        let seed = stepSeed(runSeed: 42, step: 0, direction: 0)
        XCTAssertEqual(result.records[0].seed, seed)
        let after = weights(lm)

        // Direct: a second copy, θ ± εz written from the host.
        let ref = try tinyModel()
        let refSet = TrainableSet.full(ref)
        var zs: [String: [Float]] = [:]
        for e in refSet.entries {
            let n = e.tensor.count
            zs[e.name] = (0..<n).map { zt_normal_at(seed, e.tensorId, 0, UInt64($0)) }
        }
        func setWeights(_ sign: Double) throws {
            for e in refSet.entries {
                let v = zip(theta[e.name]!, zs[e.name]!).map { Float(Double($0) + sign * Double(eps) * Double($1)) }
                v.withUnsafeBytes { backend.copy(e.tensor, fromHost: $0) }
            }
        }
        try setWeights(1); let lp = try languageModelLoss(ref, batch)
        try setWeights(-1); let lm_ = try languageModelLoss(ref, batch)
        let g = (lp - lm_) / (2 * Double(eps))
        // The two sides' θ ± εz differ only by rounding (1e-7 relative), which the division by 2ε
        // amplifies to ~1e-4 of g at most.
        XCTAssertEqual(Double(result.records[0].projectedGrad), g, accuracy: 1e-3 * max(1, abs(g)))
        XCTAssertNotEqual(g, 0)
        let gA = Double(result.records[0].projectedGrad)
        for e in set.entries {
            let t = theta[e.name]!, z = zs[e.name]!, a = after[e.name]!
            for i in 0..<t.count {
                let want = Double(t[i]) - Double(lr) * gA * Double(z[i])
                XCTAssertEqual(Double(a[i]), want, accuracy: 4e-7 * (abs(Double(t[i])) + Double(eps) * abs(Double(z[i])) + 1e-6), "\(e.name)[\(i)]")
            }
        }
        // The tied head was perturbed once (it is the embedding).
        XCTAssertEqual(set.entries.filter { $0.name == "lm_head.weight" }.count, lm.config.tieWordEmbeddings ? 0 : 1)
    }

    // Candidate scores = mean log-prob of the continuation tokens, from full logits by hand: for
    // multi-token candidates, and for one-token candidates sharing a prefix (the fast path).
    func testCandidateScoresMatchHandComputation() throws {
        let lm = try tinyModel(), tok = try tokenizer()
        let scorer = Scorer(model: lm, tokenizer: tok)
        let oneToken = TaskExample(id: "s", candidates: [Candidate(prefix: "it was a film", continuation: " a"),
                                                       Candidate(prefix: "it was a film", continuation: " the")], label: 0)
        XCTAssertEqual(tok.encode(" a", addSpecialTokens: false).count, 1)
        XCTAssertEqual(tok.encode(" the", addSpecialTokens: false).count, 1)
        XCTAssertGreaterThan(tok.encode(" terrible", addSpecialTokens: false).count, 1)
        let examples = [tinySplits().train[0], oneToken, tinySplits().train[3]]
        let all = try scorer.candidateScores(examples)
        for (ex, scores) in zip(examples, all) { for (c, cand) in ex.candidates.enumerated() {
            let p = tok.encode(cand.prefix, addSpecialTokens: true), k = tok.encode(cand.continuation, addSpecialTokens: false)
            let ids = p + k
            let logits = backend.toHost(try lm.allLogits(.leftPadded([ids], padId: 0)))
            let v = lm.config.vocabSize
            var total = 0.0
            for j in p.count..<ids.count {
                let row = logits[((j - 1) * v)..<(j * v)].map(Double.init)
                let m = row.max()!
                total += row[Int(ids[j]) - 0] - (m + log(row.reduce(0) { $0 + exp($1 - m) }))
            }
            XCTAssertEqual(scores[c], total / Double(k.count), accuracy: 1e-4)
        } }
    }

    func testNonFiniteLossStopsWithStateRestored() throws {
        let lm = try tinyModel()
        let before = weights(lm)
        let mezo = MeZO(set: TrainableSet.full(lm), options: MeZOOptions(eps: 1e-2), backend: backend)
        var calls = 0
        XCTAssertThrowsError(try mezo.step(StepContext(step: 3, runSeed: 1, lr: 1e-3, loss: { calls += 1; return calls == 2 ? .nan : 1.0 }))) {
            XCTAssertTrue("\($0)".contains("step 4"), "\($0)")
        }
        // θ is back within the rounding of +ε then −2ε then +ε.
        for (name, w) in weights(lm) {
            for (x, y) in zip(w, before[name]!) { XCTAssertEqual(x, y, accuracy: 3e-7 * (abs(y) + 0.05)) }
        }
    }

    func testScheduleShapes() {
        let s = StepSchedule(lr: 1, kind: .cosine, warmupSteps: 2, totalSteps: 12)
        XCTAssertEqual(s.lr(at: 0), 0.5)
        XCTAssertEqual(s.lr(at: 2), 1)
        XCTAssertEqual(s.lr(at: 7), 0.5, accuracy: 1e-6)
        XCTAssertEqual(StepSchedule(lr: 1, kind: .linear, totalSteps: 10).lr(at: 5), 0.5)
        XCTAssertNotEqual(stepSeed(runSeed: 1, step: 0, direction: 0), stepSeed(runSeed: 1, step: 0, direction: 1))
        XCTAssertNotEqual(stepSeed(runSeed: 1, step: 1, direction: 0), stepSeed(runSeed: 2, step: 1, direction: 0))
    }
}
