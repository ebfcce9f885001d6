import Foundation
import ZOTuneModels

// In-context learning as MeZO evaluates it (large_models/utils.py `encode_prompt`, run.py with
// one train set per eval sample):
//   demonstration  = verbalize(train example, its correct option).strip()
//   demonstrations = "\n\n".join(demonstrations).strip()
//   each option    = (demonstrations + "\n\n" + verbalize(eval example, option)).lstrip().strip(' ')
// The option tokens scored are the same as without demonstrations; a sequence longer than the
// context loses tokens at the left (the earliest demonstrations first), keeping a leading BOS.

public enum InContext {
    /// MeZO's `train_sep`, the same for every task.
    public static let separator = "\n\n"

    /// The example written out with its correct answer, as MeZO's demonstrations are; nil when it
    /// has none (no label, or a generation example without answers).
    public static func demonstration(_ example: TaskExample) -> String? {
        if example.isGeneration {
            guard let target = example.generationTarget else { return nil }
            return stripWhitespace((example.prompt ?? "") + target)
        }
        guard let y = example.label, example.candidates.indices.contains(y) else { return nil }
        let correct = example.candidates[y]
        return stripWhitespace(correct.prefix + correct.continuation)
    }

    /// `example` preceded by `demonstrations` (already verbalized): every option's prefix, or the
    /// generation prompt, gets "demonstrations\n\n" in front. No demonstrations: `example` unchanged.
    public static func prompt(_ example: TaskExample, demonstrations: [String]) -> TaskExample {
        let demos = stripWhitespace(demonstrations.joined(separator: separator))
        guard !demos.isEmpty else { return example }
        let head = demos + separator
        if example.isGeneration {
            return TaskExample(id: example.id, candidates: [], label: example.label,
                               prompt: head + (example.prompt ?? ""), answers: example.answers)
        }
        return TaskExample(id: example.id, candidates: example.candidates.map { Candidate(prefix: head + $0.prefix, continuation: $0.continuation) },
                           label: example.label, prompt: example.prompt, answers: example.answers)
    }

    /// Which pool examples are the demonstrations of evaluation example `index`: the first `k` of
    /// a permutation seeded by (data seed, stream, index), so every example has its own draw (as
    /// MeZO's one-train-set-per-eval-sample ICL) and the same seed gives the same prompts.
    public static func draw(poolCount: Int, k: Int, index: Int, dataSeed: UInt64, stream: String) -> [Int] {
        let seed = sourceSeed(dataSeed: dataSeed, source: "\(stream)/\(index)")
        return Array(seededPermutation(count: poolCount, seed: seed).prefix(k))
    }

    /// Every example with `k` demonstrations drawn from `pool` (examples without an answer are
    /// left out of the pool). `k` = 0 returns the examples unchanged (zero-shot).
    public static func apply(_ examples: [TaskExample], pool: [TaskExample], k: Int, dataSeed: UInt64, stream: String) throws -> [TaskExample] {
        guard k > 0 else { return examples }
        let demos = pool.compactMap(demonstration)
        guard demos.count >= k else {
            throw ModelError(file: stream, field: "in-context demonstrations",
                             "\(k) demonstrations asked for, but the train split has \(demos.count) usable examples (raise --train-count)")
        }
        return examples.enumerated().map { i, ex in
            prompt(ex, demonstrations: draw(poolCount: demos.count, k: k, index: i, dataSeed: dataSeed, stream: stream).map { demos[$0] })
        }
    }
}
