import Foundation
import ZOTuneKernels
import ZOTuneModels

/// Real text for pre-training, split into training and held-out documents (docs/pretraining.md).
public struct TextCorpus: Sendable {
    /// What the documents are, for the run header and logs.
    public let name: String
    public let train: [String]
    public let heldOut: [String]
    /// How the split was made.
    public let split: String

    /// Every `heldOutEvery`-th group (article, or blank-line document) is held out: groups
    /// heldOutEvery−1, 2·heldOutEvery−1, … in file order. Whole articles, so held-out text shares
    /// no paragraph with training text.
    public static func load(_ path: String, heldOutEvery: Int = 10) throws -> TextCorpus {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(file: path, field: "file", "cannot read the corpus")
        }
        if path.lowercased().hasSuffix(".json") { return try squad(data, path: path, heldOutEvery: heldOutEvery) }
        guard let text = String(data: data, encoding: .utf8) else { throw ModelError(file: path, field: "text", "not UTF-8") }
        let docs = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard docs.count >= 2 else { throw ModelError(file: path, field: "text", "needs at least two documents (separated by a blank line)") }
        let (train, held) = split(docs.map { [$0] }, every: heldOutEvery)
        return TextCorpus(name: URL(fileURLWithPath: path).lastPathComponent, train: train, heldOut: held,
                          split: "documents separated by blank lines; every \(heldOutEvery)th held out")
    }

    /// SQuAD v1.1 JSON: the paragraphs ("context") of each article, in file order.
    static func squad(_ data: Data, path: String, heldOutEvery: Int) throws -> TextCorpus {
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError(file: path, field: "json", "malformed JSON")
        }
        guard let articles = root["data"] as? [[String: Any]] else { throw ModelError(file: path, field: "data", "missing: not a SQuAD file") }
        var groups: [[String]] = []
        for (i, a) in articles.enumerated() {
            guard let paragraphs = a["paragraphs"] as? [[String: Any]] else { throw ModelError(file: path, field: "data[\(i)].paragraphs", "missing") }
            groups.append(try paragraphs.enumerated().map { j, p in
                guard let c = p["context"] as? String else { throw ModelError(file: path, field: "data[\(i)].paragraphs[\(j)].context", "missing") }
                return c
            })
        }
        guard groups.count >= 2 else { throw ModelError(file: path, field: "data", "needs at least two articles") }
        let (train, held) = split(groups, every: heldOutEvery)
        return TextCorpus(name: "squad-contexts:" + URL(fileURLWithPath: path).lastPathComponent, train: train, heldOut: held,
                          split: "\(groups.count) articles; every \(heldOutEvery)th article's paragraphs held out")
    }

    static func split(_ groups: [[String]], every: Int) -> ([String], [String]) {
        var train: [String] = [], held: [String] = []
        for (i, g) in groups.enumerated() {
            if every > 1 && i % every == every - 1 { held += g } else { train += g }
        }
        if held.isEmpty, let last = groups.last { held = last; train.removeLast(last.count) }
        return (train, held)
    }
}

/// A corpus as contiguous windows of L+1 tokens: documents tokenized without special tokens,
/// each followed by EOS, concatenated in order and cut every L tokens (window k is tokens
/// kL … kL+L, so every token but the first is a target exactly once). Training windows come in a
/// seeded permutation per epoch; the loss is the mean next-token NLL over the batch's B·L targets.
/// The dev metric is the held-out perplexity exp(mean NLL).
public final class CorpusData: TrainingData, @unchecked Sendable {
    public let corpus: TextCorpus
    public let model: CausalLM
    public let length: Int
    public let train: [[Int32]]
    public let heldOut: [[Int32]]
    let batchSize: Int
    let sampler: MinibatchSampler
    let searchSampler: MinibatchSampler
    /// Training tokens (targets) and held-out windows evaluated.
    public var trainTokens: Int { train.count * length }
    /// A hash of the token windows (training and held-out), for the run header.
    public var contentHash: String {
        var h = UInt64(length)
        for w in train + [[-1]] + heldOut { h = w.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64($0.count), h) } }
        return String(format: "%016llx", h)
    }

    public init(corpus: TextCorpus, tokenizer: any Tokenizer, model: CausalLM, length: Int, batchSize: Int, dataSeed: UInt64,
                evalWindows: Int?) throws {
        guard length >= 2, length <= model.config.maxPositions else {
            throw ModelError(file: corpus.name, field: "seq-len", "window length \(length) must be 2…\(model.config.maxPositions) (the model's positions)")
        }
        guard let eos = tokenizer.eosId ?? tokenizer.bosId else {
            throw ModelError(file: corpus.name, field: "tokenizer", "the tokenizer has no EOS or BOS token to separate documents")
        }
        self.corpus = corpus
        self.model = model
        self.length = length
        self.batchSize = batchSize
        func windows(_ docs: [String]) -> [[Int32]] {
            var ids: [Int32] = []
            for d in docs { ids += tokenizer.encode(d, addSpecialTokens: false); ids.append(eos) }
            return stride(from: 0, to: ids.count - length, by: length).map { Array(ids[$0...($0 + length)]) }
        }
        train = windows(corpus.train)
        let held = windows(corpus.heldOut)
        heldOut = evalWindows.map { Array(held.prefix($0)) } ?? held
        guard !train.isEmpty, !heldOut.isEmpty else {
            throw ModelError(file: corpus.name, field: "text", "too short for one training and one held-out window of \(length + 1) tokens")
        }
        if let bad = (train + heldOut).lazy.flatMap({ $0 }).first(where: { Int($0) >= model.config.vocabSize }) {
            throw ModelError(file: corpus.name, field: "tokenizer", "token id \(bad) is outside the model's vocabulary (\(model.config.vocabSize))")
        }
        sampler = MinibatchSampler(count: train.count, batchSize: batchSize, dataSeed: dataSeed)
        searchSampler = MinibatchSampler(count: train.count, batchSize: batchSize, dataSeed: dataSeed ^ 0x5EA2_C400)
    }

    public var metricName: String { "perplexity" }
    public var higherIsBetter: Bool { false }

    /// Mean NLL of each window (one forward for all of them).
    public func windowLosses(_ windows: [[Int32]]) throws -> [Double] {
        let b = windows.count, l = length
        var ids = [Int32](), targets = [Int32]()
        ids.reserveCapacity(b * l)
        targets.reserveCapacity(b * l)
        for w in windows { ids += w[0..<l]; targets += w[1...l] }
        let batch = TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: b * l), batch: b, length: l)
        let lp = try model.tokenLogProbs(batch, targets: targets)
        return (0..<b).map { r in -lp[(r * l)..<((r + 1) * l)].reduce(0.0) { $0 + Double($1) } / Double(l) }
    }

    func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(max(1, x.count)) }

    public func loss(step t: Int, objective: ObjectiveKind) throws -> Double {
        mean(try windowLosses(sampler.indices(step: t).map { train[$0] }))
    }

    /// (ℓ₊ₖ, ℓ₋ₖ) of step t's windows under the batched low-rank probe (lowrank-spsa): the 2q members'
    /// copies of the windows in one forward, each member's loss the mean over its windows as `loss`.
    public func lowRankProbe(_ probe: LowRankProbe, seed: UInt64, step t: Int) throws -> [(plus: Double, minus: Double)] {
        let windows = sampler.indices(step: t).map { train[$0] }
        let (n, b, l) = (probe.members, windows.count, length)
        var ids = [Int32](), targets = [Int32]()
        ids.reserveCapacity(n * b * l)
        targets.reserveCapacity(n * b * l)
        for _ in 0..<n { for w in windows { ids += w[0..<l]; targets += w[1...l] } }
        let batch = TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: n * b * l), batch: n * b, length: l)
        let lp = try probe.withProbe(seed: seed) { try model.tokenLogProbs(batch, targets: targets) }
        let per = b * l
        let losses = (0..<n).map { j in -lp[(j * per)..<((j + 1) * per)].reduce(0.0) { $0 + Double($1) } / Double(per) }
        return (0..<(n / 2)).map { (losses[2 * $0], losses[2 * $0 + 1]) }
    }

    public func searchLoss(_ j: Int, objective: ObjectiveKind) throws -> Double {
        mean(try windowLosses(searchSampler.indices(step: j).map { train[$0] }))
    }

    public func scoreSamples(step t: Int, objective: ObjectiveKind) throws -> BatchScore {
        let losses = try windowLosses(sampler.indices(step: t).map { train[$0] })
        return BatchScore(loss: mean(losses), correct: 0, count: losses.count, sampleLosses: losses, forwardOwners: [Array(losses.indices)])
    }

    /// Mean NLL per held-out token, in batches of the training batch size.
    public func heldOutLoss() throws -> Double {
        var total = 0.0
        for s in stride(from: 0, to: heldOut.count, by: batchSize) {
            total += try windowLosses(Array(heldOut[s..<min(heldOut.count, s + batchSize)])).reduce(0, +)
        }
        return total / Double(heldOut.count)
    }

    public func evaluateDev() throws -> Double { exp(try heldOutLoss()) }
    public func evaluateTest() throws -> Evaluation? { nil }
    public func firstBatchShape() -> (sequences: Int, length: Int) { (batchSize, length) }
}
