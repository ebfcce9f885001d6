import Foundation
import ZOTuneModels

/// A split's evaluation: accuracy of the argmax candidate for classification and multiple choice,
/// SQuAD F1 and exact match of greedy answers for generation tasks. Used by `train` (dev before,
/// during and after; test at the end) and by `eval`.
public struct EvalResult: Sendable, Equatable {
    public let examples: Int
    public let isGeneration: Bool
    /// Correct predictions (classification) or summed F1 and EM (generation).
    public let correct: Int
    public let f1Sum: Double
    public let exactSum: Double

    public var accuracy: Double { Double(correct) / Double(max(1, examples)) }
    public var f1: Double { f1Sum / Double(max(1, examples)) }
    public var exactMatch: Double { exactSum / Double(max(1, examples)) }
    /// "accuracy" or "f1": the metric keep-best compares and metrics.jsonl names.
    public var metricName: String { isGeneration ? "f1" : "accuracy" }
    public var metric: Double { isGeneration ? f1 : accuracy }

    /// One line, e.g. "accuracy 0.7150 (200 examples)".
    public var summary: String {
        isGeneration ? String(format: "F1 %.4f, EM %.4f (%d examples)", f1, exactMatch, examples)
                     : String(format: "accuracy %.4f (%d examples)", accuracy, examples)
    }
}

public struct Evaluator: Sendable {
    public let scorer: Scorer
    /// Examples scored per call (classification candidates are micro-batched further by the scorer).
    public var chunk = 32

    public init(scorer: Scorer) { self.scorer = scorer }

    /// `progress` is called after each chunk with the running result.
    public func evaluate(_ examples: [TaskExample], progress: ((EvalResult) -> Void)? = nil) throws -> EvalResult {
        let generation = examples.first?.isGeneration ?? false
        var n = 0, correct = 0, f1 = 0.0, em = 0.0
        for start in stride(from: 0, to: examples.count, by: chunk) {
            let s = try scorer.score(Array(examples[start..<min(examples.count, start + chunk)]),
                                     objective: generation ? .negativeF1 : .crossEntropy)
            n += s.count
            if generation { f1 += s.f1Sum; em += s.exactSum } else { correct += s.correct }
            progress?(EvalResult(examples: n, isGeneration: generation, correct: correct, f1Sum: f1, exactSum: em))
        }
        return EvalResult(examples: n, isGeneration: generation, correct: correct, f1Sum: f1, exactSum: em)
    }
}
