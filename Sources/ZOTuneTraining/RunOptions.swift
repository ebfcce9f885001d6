import Foundation

/// What a run does apart from the optimizer: data, steps, schedule, evaluation, seeds and saving.
/// Stored in the run header; resume requires the same values.
public struct RunOptions: Sendable, Equatable, Codable {
    public var task: String
    public var steps: Int
    public var batchSize: Int
    public var schedule: StepSchedule
    public var objective: ObjectiveKind
    /// Evaluate on dev every N steps (0: only at the end).
    public var evalEvery: Int
    /// Dev examples per evaluation (nil: the whole dev split).
    public var evalCount: Int?
    /// Step seeds derive from it (stepSeed).
    public var seed: UInt64
    /// Seed of the data draw and of the minibatch order.
    public var dataSeed: UInt64
    public var saveEvery: Int
    public var maxLength: Int
    /// End on the weights of the best dev evaluation (replayed from the base) instead of the last step.
    public var keepBest: Bool

    public init(task: String, steps: Int, batchSize: Int = 16, lr: Float = 1e-6, schedule: LRSchedule = .constant,
                warmupSteps: Int = 0, objective: ObjectiveKind = .crossEntropy, evalEvery: Int = 0, evalCount: Int? = nil,
                seed: UInt64 = 0, dataSeed: UInt64 = 0, saveEvery: Int = 10, maxLength: Int = 256, keepBest: Bool = true) {
        self.task = task
        self.steps = steps
        self.batchSize = batchSize
        self.schedule = StepSchedule(lr: lr, kind: schedule, warmupSteps: warmupSteps, totalSteps: steps)
        self.objective = objective
        self.evalEvery = evalEvery
        self.evalCount = evalCount
        self.seed = seed
        self.dataSeed = dataSeed
        self.saveEvery = saveEvery
        self.maxLength = maxLength
        self.keepBest = keepBest
    }

    /// The options that differ from `other`, by their command-line names, with this run's and the
    /// other's values.
    public func differences(_ other: RunOptions) -> [(option: String, was: String, now: String)] {
        func g(_ x: Float) -> String { String(format: "%g", x) }
        let pairs: [(String, String, String)] = [
            ("--task", task, other.task), ("--steps", "\(steps)", "\(other.steps)"),
            ("--batch-size", "\(batchSize)", "\(other.batchSize)"), ("--lr", g(schedule.lr), g(other.schedule.lr)),
            ("--schedule", schedule.kind.rawValue, other.schedule.kind.rawValue),
            ("--warmup", "\(schedule.warmupSteps)", "\(other.schedule.warmupSteps)"),
            ("--objective", objective.rawValue, other.objective.rawValue),
            ("--eval-every", "\(evalEvery)", "\(other.evalEvery)"),
            ("--eval-count", evalCount.map(String.init) ?? "all", other.evalCount.map(String.init) ?? "all"),
            ("--seed", "\(seed)", "\(other.seed)"), ("--data-seed", "\(dataSeed)", "\(other.dataSeed)"),
            ("--save-every", "\(saveEvery)", "\(other.saveEvery)"), ("--max-length", "\(maxLength)", "\(other.maxLength)"),
            ("--keep-last", keepBest ? "off" : "on", other.keepBest ? "off" : "on"),
        ]
        var out = pairs.filter { $0.1 != $0.2 }.map { (option: $0.0, was: $0.1, now: $0.2) }
        // Anything the table above does not name (a field added later) still refuses the resume.
        if out.isEmpty && self != other { out.append((option: "run options", was: "\(self)", now: "\(other)")) }
        return out
    }

    enum CodingKeys: String, CodingKey {
        case task, steps, batchSize = "batch_size", schedule, objective, evalEvery = "eval_every", evalCount = "eval_count"
        case seed, dataSeed = "data_seed", saveEvery = "save_every", maxLength = "max_length", keepBest = "keep_best"
    }

    // Seeds are 64-bit: stored as decimal strings so no JSON reader rounds them through a double.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        task = try c.decode(String.self, forKey: .task)
        steps = try c.decode(Int.self, forKey: .steps)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        schedule = try c.decode(StepSchedule.self, forKey: .schedule)
        objective = try c.decode(ObjectiveKind.self, forKey: .objective)
        evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        evalCount = try c.decodeIfPresent(Int.self, forKey: .evalCount)
        func u64(_ k: CodingKeys) throws -> UInt64 {
            guard let v = UInt64(try c.decode(String.self, forKey: k)) else {
                throw DecodingError.dataCorruptedError(forKey: k, in: c, debugDescription: "not an unsigned 64-bit integer")
            }
            return v
        }
        seed = try u64(.seed)
        dataSeed = try u64(.dataSeed)
        saveEvery = try c.decode(Int.self, forKey: .saveEvery)
        maxLength = try c.decode(Int.self, forKey: .maxLength)
        keepBest = try c.decode(Bool.self, forKey: .keepBest)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(task, forKey: .task)
        try c.encode(steps, forKey: .steps)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(objective, forKey: .objective)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encodeIfPresent(evalCount, forKey: .evalCount)
        try c.encode(String(seed), forKey: .seed)
        try c.encode(String(dataSeed), forKey: .dataSeed)
        try c.encode(saveEvery, forKey: .saveEvery)
        try c.encode(maxLength, forKey: .maxLength)
        try c.encode(keepBest, forKey: .keepBest)
    }
}
