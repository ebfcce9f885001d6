import Foundation
import ZOTuneModels

/// A finished evaluation: the value keep-best compares and one line for people.
public struct Evaluation: Sendable, Equatable {
    public let metric: Double
    public let summary: String

    public init(metric: Double, summary: String) {
        self.metric = metric
        self.summary = summary
    }
}

/// What a run trains on and is judged by (the trainer knows data only through this): a task's
/// labelled examples (`TaskData`) or a text corpus cut into windows (`CorpusData`). Minibatches
/// are functions of the step index alone, so resumed runs see the same data.
public protocol TrainingData: AnyObject {
    /// "accuracy", "f1" or "perplexity": what dev (and test) report, and metrics.jsonl's key `dev_<name>`.
    var metricName: String { get }
    /// Whether a larger metric is better (false for perplexity).
    var higherIsBetter: Bool { get }
    /// Mean loss of step t's minibatch at the current θ.
    func loss(step t: Int, objective: ObjectiveKind) throws -> Double
    /// Mean loss of search minibatch j (DiZO): a second deterministic stream over the training data.
    func searchLoss(_ j: Int, objective: ObjectiveKind) throws -> Double
    /// Step t's minibatch with per-example losses, each scoring path in one forward (Zoop).
    func scoreSamples(step t: Int, objective: ObjectiveKind) throws -> BatchScore
    /// The dev metric at the current θ.
    func evaluateDev() throws -> Double
    /// The test evaluation at the end of a run (nil: no test split).
    func evaluateTest() throws -> Evaluation?
    /// Sequences and longest sequence (tokens) of step 0's forward: the shape the memory report's
    /// first-order estimate is computed for.
    func firstBatchShape() -> (sequences: Int, length: Int)
}

/// A task's splits scored by candidates (classification, multiple choice) or answers (generation).
public final class TaskData: TrainingData, @unchecked Sendable {
    public let splits: TaskSplits
    public let evaluator: Evaluator
    let sampler: MinibatchSampler
    let searchSampler: MinibatchSampler
    let devExamples: [TaskExample]

    public init(splits: TaskSplits, scorer: Scorer, batchSize: Int, dataSeed: UInt64, evalCount: Int?) throws {
        guard !splits.train.isEmpty else { throw ModelError(file: splits.task, field: "train", "no training examples") }
        self.splits = splits
        evaluator = Evaluator(scorer: scorer)
        sampler = MinibatchSampler(count: splits.train.count, batchSize: batchSize, dataSeed: dataSeed)
        searchSampler = MinibatchSampler(count: splits.train.count, batchSize: batchSize, dataSeed: dataSeed ^ 0x5EA2_C400)
        devExamples = evalCount.map { Array(splits.dev.prefix($0)) } ?? splits.dev
    }

    public var scorer: Scorer { evaluator.scorer }
    public var metricName: String { (splits.train.first?.isGeneration ?? false) ? "f1" : "accuracy" }
    public var higherIsBetter: Bool { true }

    public func minibatch(_ t: Int) -> [TaskExample] { sampler.indices(step: t).map { splits.train[$0] } }

    public func loss(step t: Int, objective: ObjectiveKind) throws -> Double {
        try scorer.score(minibatch(t), objective: objective).loss
    }

    public func searchLoss(_ j: Int, objective: ObjectiveKind) throws -> Double {
        try scorer.score(searchSampler.indices(step: j).map { splits.train[$0] }, objective: objective).loss
    }

    public func scoreSamples(step t: Int, objective: ObjectiveKind) throws -> BatchScore {
        try scorer.score(minibatch(t), objective: objective, singleForward: true)
    }

    public func evaluateDev() throws -> Double { try evaluator.evaluate(devExamples).metric }

    public func evaluateTest() throws -> Evaluation? {
        guard !splits.test.isEmpty else { return nil }
        let r = try evaluator.evaluate(splits.test)
        return Evaluation(metric: r.metric, summary: r.summary)
    }

    public func firstBatchShape() -> (sequences: Int, length: Int) {
        let cands = minibatch(0).flatMap(\.candidates)
        return (cands.count, cands.map { scorer.sequence($0).ids.count }.max() ?? 1)
    }
}
