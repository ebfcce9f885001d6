import Foundation
import ZOTuneBackend
import ZOTuneModels

/// What a ZO step minimises (ALGORITHMS.md §3, §6). Only loss values are used, so
/// non-differentiable objectives work as well as cross-entropy.
public enum ObjectiveKind: String, Sendable, CaseIterable, Codable {
    /// Cross-entropy over the candidates' mean log-probs (classification as in MeZO).
    case crossEntropy = "ce"
    /// Mean negative log-likelihood of the correct candidate / gold answer tokens (LM loss).
    case lmLoss = "lm"
    /// −accuracy of the argmax candidate.
    case negativeAccuracy = "neg-accuracy"
    /// −F1 of greedy generations against the gold answers (SQuAD, DROP).
    case negativeF1 = "neg-f1"
}

/// Scores of one minibatch: the loss the optimizer sees and what was predicted.
public struct BatchScore: Sendable {
    public let loss: Double
    public let correct: Int
    public let count: Int
    /// Generation tasks: summed F1 and exact match over `count` examples.
    public var f1Sum: Double = 0
    public var exactSum: Double = 0
    /// The loss of each example (same order; `loss` is their mean over labelled examples).
    public var sampleLosses: [Double] = []
    /// The example of each sequence row of each model forward, in forward order (classification
    /// and LM-loss scoring; empty for generated answers).
    public var forwardOwners: [[Int]] = []
    public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }
    public var f1: Double { count == 0 ? 0 : f1Sum / Double(count) }
    public var exactMatch: Double { count == 0 ? 0 : exactSum / Double(count) }
}

/// The processes of a data-parallel run as the scorer sees them (MPIWorld implements it): each
/// computes its share of the micro-batches, then every rank gathers all ranks' scores in rank order.
public protocol ScoreExchange: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    func allgather(_ values: [Double]) -> [[Double]]
}

/// Turns task examples into token batches and scores them with forward passes only.
public final class Scorer: @unchecked Sendable {
    /// Data parallelism: micro-batch g of every call is computed by rank g mod size; the scores
    /// are then exchanged, so every rank returns all of them. The micro-batches are cut exactly as
    /// one process cuts them, whatever the number of ranks: a row's bits from a BLAS GEMM depend
    /// on the product's shape and the row's place in it (OpenBLAS's Haswell/Zen/SkylakeX kernels),
    /// so only the same micro-batches give one process's bits (docs/distributed.md).
    public var exchange: (any ScoreExchange)?
    /// Micro-batches this process computed, of all those its calls formed (equal without an exchange).
    public private(set) var computedMicroBatches = 0
    public private(set) var formedMicroBatches = 0
    public let model: CausalLM
    public let tokenizer: any Tokenizer
    /// Longest sequence fed to the model; longer prefixes lose tokens at the left.
    public let maxLength: Int
    let padId: Int32
    private var cache: [String: [Int32]] = [:]

    public init(model: CausalLM, tokenizer: any Tokenizer, maxLength: Int = 256) {
        self.model = model
        self.tokenizer = tokenizer
        self.maxLength = maxLength
        padId = tokenizer.padId ?? tokenizer.eosId ?? 0
    }

    func encode(_ text: String, special: Bool) -> [Int32] {
        let key = (special ? "1" : "0") + text
        if let ids = cache[key] { return ids }
        let ids = tokenizer.encode(text, addSpecialTokens: special)
        if cache.count < 200_000 { cache[key] = ids }
        return ids
    }

    /// 1 when the tokenizer starts every text with its BOS token, else 0.
    private lazy var leadingBOS: Int = {
        guard let bos = tokenizer.bosId else { return 0 }
        return tokenizer.encode("", addSpecialTokens: true) == [bos] ? 1 : 0
    }()

    /// The last `count` tokens of a prefix too long for the context, keeping a leading BOS as MeZO
    /// does (`encoding[0:1] + encoding[1:][-(max_length-1):]`): what goes is the start of the text.
    func truncateLeft(_ ids: [Int32], to count: Int) -> [Int32] {
        guard ids.count > count else { return ids }
        let keep = count > 1 && leadingBOS == 1 && ids.first == tokenizer.bosId ? 1 : 0
        return Array(ids.prefix(keep)) + Array(ids.suffix(count - keep))
    }

    /// Token ids of prefix + continuation and how many trailing tokens are the continuation. The
    /// two are encoded separately (the continuation starts with its own space), as MeZO does.
    func sequence(_ c: Candidate) -> (ids: [Int32], scored: Int) {
        var prefix = encode(c.prefix, special: true)
        var cont = encode(c.continuation, special: false)
        if cont.isEmpty { cont = [padId] }
        if cont.count >= maxLength { cont = Array(cont.prefix(maxLength - 1)) }
        prefix = truncateLeft(prefix, to: maxLength - cont.count)
        if prefix.isEmpty { prefix = [tokenizer.bosId ?? padId] }
        return (prefix + cont, cont.count)
    }

    /// How many of `examples` do not fit in `maxLength` tokens and lose the start of their prompt
    /// (e.g. in-context demonstrations); generation prompts leave room for `maxNewTokens`.
    public func truncatedCount(_ examples: [TaskExample], maxNewTokens: Int = 32) -> Int {
        examples.filter { ex in
            if ex.isGeneration { return encode(ex.prompt ?? "", special: true).count > max(1, maxLength - maxNewTokens) }
            return ex.candidates.contains { encode($0.prefix, special: true).count + max(1, encode($0.continuation, special: false).count) > maxLength }
        }.count
    }

    /// Mean log-prob of each candidate's continuation, for every candidate of every example.
    /// Examples whose candidates share one prefix and are one token each (SST-2 style) cost one
    /// sequence: the prefix, read at its last position. The rest run as prefix + continuation.
    /// Sequences are sorted by length and grouped into micro-batches of at most `tokenBudget`
    /// padded tokens (and `microBatch` sequences): little padding, bounded activation memory.
    public func candidateScores(_ examples: [TaskExample], microBatch: Int = 32, tokenBudget: Int = 512) throws -> [[Double]] {
        var owners: [[Int]] = []
        return try candidateScores(examples, microBatch: microBatch, tokenBudget: tokenBudget, owners: &owners)
    }

    /// The same, recording in `owners` the example of each sequence row of each forward.
    func candidateScores(_ examples: [TaskExample], microBatch: Int, tokenBudget: Int, owners: inout [[Int]]) throws -> [[Double]] {
        var scores = examples.map { [Double](repeating: 0, count: $0.candidates.count) }
        var single: [(example: Int, ids: [Int32], tokens: [Int32])] = []
        var multi: [(example: Int, candidate: Int, ids: [Int32], scored: Int)] = []
        for (e, ex) in examples.enumerated() {
            let conts = ex.candidates.map { encode($0.continuation, special: false) }
            if ex.candidates.count > 1, conts.allSatisfy({ $0.count == 1 }), Set(ex.candidates.map(\.prefix)).count == 1 {
                // As if prefix + option were one sequence of at most maxLength tokens (MeZO's rule).
                var prefix = truncateLeft(encode(ex.candidates[0].prefix, special: true), to: maxLength - 1)
                if prefix.isEmpty { prefix = [tokenizer.bosId ?? padId] }
                single.append((e, prefix, conts.map { $0[0] }))
            } else {
                for (c, cand) in ex.candidates.enumerated() {
                    let s = sequence(cand)
                    multi.append((e, c, s.ids, s.scored))
                }
            }
        }
        // Which rank computes each micro-batch, and which score each micro-batch fills.
        var group = 0
        var scoreOwner = exchange == nil ? [] : examples.map { [Int](repeating: 0, count: $0.candidates.count) }
        func mine(_ g: Int) -> Bool {
            formedMicroBatches += 1
            let m = exchange.map { g % $0.size == $0.rank } ?? true
            if m { computedMicroBatches += 1 }
            return m
        }
        // The cut depends on the sequences alone, never on the ranks: cutting finer for more ranks
        // changed every GEMM's rows and so the scores' last bits. Ranks beyond the number of
        // micro-batches wait for this forward.
        single.sort { $0.ids.count < $1.ids.count }
        for range in Scorer.groups(single.map(\.ids.count), maxCount: microBatch, tokenBudget: tokenBudget) {
            let part = single[range]
            defer { group += 1 }
            if let exchange { for job in part { for c in job.tokens.indices { scoreOwner[job.example][c] = group % exchange.size } } }
            guard mine(group) else { continue }
            let batch = TokenBatch.leftPadded(part.map(\.ids), padId: padId)
            owners.append(part.map(\.example))
            // Log-softmax and gather on the device: B × C floats come back, not B × vocab.
            let lp = try model.lastTokenLogProbs(batch, candidates: part.map(\.tokens))
            for (b, job) in part.enumerated() {
                for c in job.tokens.indices { scores[job.example][c] = Double(lp[b][c]) }
            }
        }
        multi.sort { $0.ids.count < $1.ids.count }
        for range in Scorer.groups(multi.map(\.ids.count), maxCount: microBatch, tokenBudget: tokenBudget) {
            let part = Array(multi[range])
            defer { group += 1 }
            if let exchange { for s in part { scoreOwner[s.example][s.candidate] = group % exchange.size } }
            guard mine(group) else { continue }
            let batch = TokenBatch.leftPadded(part.map(\.ids), padId: padId)
            var targets = [Int32](repeating: -1, count: batch.tokenCount)
            for (b, s) in part.enumerated() {
                let offset = batch.length - s.ids.count   // left padding
                for k in (s.ids.count - s.scored)..<s.ids.count {
                    targets[b * batch.length + offset + k - 1] = s.ids[k]   // position k−1 predicts token k
                }
            }
            owners.append(part.map(\.example))
            let lp = try model.tokenLogProbs(batch, targets: targets)
            for (b, s) in part.enumerated() {
                let total = lp[(b * batch.length)..<((b + 1) * batch.length)].reduce(0.0) { $0 + Double($1) }
                scores[s.example][s.candidate] = total / Double(s.scored)
            }
        }
        if let exchange, exchange.size > 1 {
            let all = exchange.allgather(scores.flatMap { $0 })
            var i = 0
            for e in scores.indices {
                for c in scores[e].indices {
                    scores[e][c] = all[scoreOwner[e][c]][i]
                    i += 1
                }
            }
        }
        return scores
    }

    /// Consecutive ranges of ascending `lengths` whose padded size (count × longest) stays within
    /// the budget; a sequence longer than the budget goes alone.
    static func groups(_ lengths: [Int], maxCount: Int, tokenBudget: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        for i in lengths.indices where i > start {
            if (i - start + 1) * lengths[i] > tokenBudget || i - start >= maxCount {
                out.append(start..<i)
                start = i
            }
        }
        if start < lengths.count { out.append(start..<lengths.count) }
        return out
    }

    /// Greedy answers to generation prompts, cut at the first newline (the template's answer end).
    public func generateAnswers(_ examples: [TaskExample], maxNewTokens: Int = 32) throws -> [String] {
        var out: [String] = []
        for start in stride(from: 0, to: examples.count, by: 8) {
            let part = examples[start..<min(examples.count, start + 8)]
            let prompts = part.map { ex -> [Int32] in
                let ids = truncateLeft(encode(ex.prompt ?? "", special: true), to: max(1, maxLength - maxNewTokens))
                return ids.isEmpty ? [tokenizer.bosId ?? padId] : ids
            }
            let stop = Set([tokenizer.eosId].compactMap { $0 })
            let generated = try model.generate(prompts, maxNewTokens: maxNewTokens, stopIds: stop, padId: padId)
            for ids in generated {
                let text = tokenizer.decode(ids, skipSpecialTokens: true)
                out.append(String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                    .trimmingCharacters(in: .whitespaces))
            }
        }
        return out
    }

    /// Generation examples: the LM loss of the gold answer (teacher forcing), or −F1 of greedy
    /// answers; F1 and exact match are reported either way for −F1.
    func scoreGeneration(_ examples: [TaskExample], objective: ObjectiveKind, singleForward: Bool) throws -> BatchScore {
        if objective == .negativeF1 {
            let answers = try generateAnswers(examples)
            var f1 = 0.0, em = 0.0, losses: [Double] = []
            for (ex, a) in zip(examples, answers) {
                let f = AnswerMetrics.f1(a, ex.answers)
                f1 += f
                em += AnswerMetrics.exactMatch(a, ex.answers)
                losses.append(-f)
            }
            return BatchScore(loss: -f1 / Double(max(1, examples.count)), correct: Int(em), count: examples.count, f1Sum: f1, exactSum: em,
                              sampleLosses: losses)
        }
        let targets = examples.map { TaskExample(id: $0.id, candidates: [Candidate(prefix: $0.prompt ?? "", continuation: $0.generationTarget ?? " \n")], label: 0) }
        var owners: [[Int]] = []
        let scores = try candidateScores(targets, microBatch: singleForward ? .max : 32, tokenBudget: singleForward ? .max : 512, owners: &owners)
        let losses = scores.map { -$0[0] }
        return BatchScore(loss: losses.reduce(0, +) / Double(max(1, examples.count)), correct: 0, count: examples.count,
                          sampleLosses: losses, forwardOwners: owners)
    }

    /// The objective on a minibatch of labelled examples. `singleForward` scores each scoring path
    /// (one-token candidates read at the prefix's end; prefix + continuation) in one forward
    /// instead of micro-batches of 512 tokens: what Zoop needs to update a layer right after it.
    public func score(_ examples: [TaskExample], objective: ObjectiveKind, singleForward: Bool = false) throws -> BatchScore {
        if let first = examples.first, first.isGeneration { return try scoreGeneration(examples, objective: objective, singleForward: singleForward) }
        var owners: [[Int]] = []
        let scores = try candidateScores(examples, microBatch: singleForward ? .max : 32, tokenBudget: singleForward ? .max : 512, owners: &owners)
        return Scorer.batchScore(examples, scores: scores, objective: objective, owners: owners)
    }

    /// The objective of labelled examples from their candidates' scores (`candidateScores`).
    static func batchScore(_ examples: [TaskExample], scores: [[Double]], objective: ObjectiveKind, owners: [[Int]] = []) -> BatchScore {
        var correct = 0
        var losses = [Double](repeating: 0, count: examples.count)
        for (i, (ex, s)) in zip(examples, scores).enumerated() {
            guard let label = ex.label, !s.isEmpty else { continue }
            let best = s.indices.max { s[$0] < s[$1] }!
            if best == label { correct += 1 }
            switch objective {
            case .crossEntropy:
                let m = s.max()!
                let lse = m + log(s.reduce(0) { $0 + exp($1 - m) })
                losses[i] = -(s[label] - lse)
            case .lmLoss:
                losses[i] = -s[label]
            case .negativeAccuracy, .negativeF1:
                losses[i] = best == label ? -1 : 0
            }
        }
        let n = examples.filter { $0.label != nil }.count
        return BatchScore(loss: n == 0 ? 0 : losses.reduce(0, +) / Double(n), correct: correct, count: n, sampleLosses: losses, forwardOwners: owners)
    }
}
