/// One scored option of an example: the model reads `prefix` and is scored on `continuation`
/// (mean log-prob of its tokens, ALGORITHMS.md §6). Most tasks share one prefix across options;
/// COPA, WSC and WinoGrande vary the prefix too.
public struct Candidate: Sendable, Equatable {
    public let prefix: String
    public let continuation: String

    public init(prefix: String, continuation: String) {
        self.prefix = prefix
        self.continuation = continuation
    }
}

/// A task example after prompting: what the engine scores or generates.
public struct TaskExample: Sendable, Equatable {
    /// Stable id within the task's source file (e.g. "train.jsonl:17" or the dataset's idx).
    public let id: String
    /// Classification / multiple choice: the options, in label order.
    public let candidates: [Candidate]
    /// Index of the correct candidate (classification), nil for generation tasks.
    public let label: Int?
    /// Generation tasks (SQuAD, DROP): the prompt to continue and the gold answers.
    public let prompt: String?
    public let answers: [String]

    public init(id: String, candidates: [Candidate], label: Int?, prompt: String? = nil, answers: [String] = []) {
        self.id = id
        self.candidates = candidates
        self.label = label
        self.prompt = prompt
        self.answers = answers
    }

    public var isGeneration: Bool { candidates.isEmpty }
}

/// Train / dev / test examples of one task, sampled as in MeZO.
public struct TaskSplits: Sendable {
    public let task: String
    public let train: [TaskExample]
    public let dev: [TaskExample]
    public let test: [TaskExample]
    /// Where each split came from and how it was drawn, for the run's output.
    public let notes: [String]

    public init(task: String, train: [TaskExample], dev: [TaskExample], test: [TaskExample], notes: [String]) {
        self.task = task
        self.train = train
        self.dev = dev
        self.test = test
        self.notes = notes
    }
}

extension TaskSplits {
    /// A hash of every example of the three splits (ids, prompts, candidates, labels, answers), in
    /// order: the run header keeps it so a resume over other data is refused.
    public var contentHash: String {
        var parts: [String] = []
        for (name, split) in [("train", train), ("dev", dev), ("test", test)] {
            parts.append("\(name):\(split.count)")
            for e in split {
                parts += [e.id, e.label.map(String.init) ?? "-", e.prompt ?? "-", "\(e.candidates.count)", "\(e.answers.count)"]
                for c in e.candidates { parts += [c.prefix, c.continuation] }
                parts += e.answers
            }
        }
        return DataFingerprint.hash(parts)
    }
}
