import Foundation
import ZOTuneKernels
import ZOTuneModels

/// Version of the z stream this build generates (zt_philox.h); stored in trajectories and stream dumps.
public let zStreamVersion = Int(ZT_Z_STREAM_VERSION)

/// The checkpoint a run starts from: a trajectory replays only onto the same content hash.
public struct BaseCheckpoint: Sendable, Equatable, Codable {
    public var path: String
    /// checkpointHash of the weight files.
    public var hash: String
    /// "gguf" or "hf".
    public var format: String
    /// Weight storage dtype of the run.
    public var dtype: String
    /// GEMM precision the run's forwards used (GemmPrecision; nil in trajectories written before
    /// it was recorded). The loss differences, and so the updates, depend on it: resume keeps it.
    public var precision: String?

    public init(path: String, hash: String, format: String, dtype: String, precision: String? = nil) {
        self.path = path
        self.hash = hash
        self.format = format
        self.dtype = dtype
        self.precision = precision
    }
}

/// How far a run got: rewritten with every save.
public struct RunProgress: Sendable, Equatable, Codable {
    public var completedSteps = 0
    public var bestStep = 0
    /// Best dev metric (accuracy or F1) and the step it was reached at (0: the base).
    public var bestDev = -1.0
    public var devBefore = 0.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case completedSteps = "completed_steps", bestStep = "best_step", bestDev = "best_dev", devBefore = "dev_before"
    }
}

/// The trajectory header (JSON): everything needed to redo a run's updates — the base, the
/// z-stream version, the trainable set, the optimizer with its hyper-parameters and the names
/// of its record fields — plus the run's options and progress.
public struct RunHeader: Sendable, Equatable, Codable {
    public var format = "zotune-trajectory"
    public var version = TrajectoryFile.formatVersion
    public var zStreamVersion = ZOTuneTraining.zStreamVersion
    public var run: RunOptions
    public var optimizer: OptimizerConfig
    public var base: BaseCheckpoint
    /// TrainableSet spec ("full").
    public var trainable: String
    /// The optimizer's record fields, in record order.
    public var recordFields: [String]
    /// nil (written only when false): whether the records rebuild θ. Zoop's do not (its updates
    /// depend on activations): its runs keep the weights in trainable.safetensors instead.
    public var replayable: Bool?
    /// The PEFT adapter θ consists of (nil: full tuning); `trainable` names its kind.
    public var peft: PEFTConfig?
    /// Block-wise ZO: the partition and schedule (nil: every step moves all of θ).
    public var blocks: BlockwiseOptions?
    public var progress = RunProgress()

    public init(run: RunOptions, optimizer: OptimizerConfig, base: BaseCheckpoint, trainable: String, recordFields: [String]) {
        self.run = run
        self.optimizer = optimizer
        self.base = base
        self.trainable = trainable
        self.recordFields = recordFields
    }

    enum CodingKeys: String, CodingKey {
        case format, version, zStreamVersion = "z_stream_version", run, optimizer, base, trainable
        case recordFields = "record_fields", replayable, peft, blocks, progress
    }

    /// A version-1 header (flat keys, MeZO only) in today's shape.
    static func fromVersion1(_ h: [String: Any], file: String) throws -> RunHeader {
        func value<T>(_ k: String, _: T.Type) throws -> T {
            guard let v = h[k] as? T else { throw ModelError(file: file, field: k, "missing or of the wrong type") }
            return v
        }
        func num(_ k: String) throws -> Double { try value(k, NSNumber.self).doubleValue }
        guard let schedule = LRSchedule(rawValue: try value("schedule", String.self)) else { throw ModelError(file: file, field: "schedule", "unknown") }
        guard let objective = ObjectiveKind(rawValue: try value("objective", String.self)) else { throw ModelError(file: file, field: "objective", "unknown") }
        guard let seed = UInt64(try value("seed", String.self)), let dataSeed = UInt64(try value("data_seed", String.self)) else {
            throw ModelError(file: file, field: "seed", "not an unsigned integer")
        }
        let run = RunOptions(task: try value("task", String.self), steps: Int(try num("steps")), batchSize: Int(try num("batch_size")),
                             lr: Float(try num("lr")), schedule: schedule, warmupSteps: Int(try num("warmup_steps")), objective: objective,
                             evalEvery: Int(try num("eval_every")), evalCount: (h["eval_count"] as? NSNumber)?.intValue, seed: seed,
                             dataSeed: dataSeed, saveEvery: Int(try num("save_every")), maxLength: Int(try num("max_length")),
                             keepBest: (h["keep_best"] as? Bool) ?? true)
        let mezo = MeZOOptions(eps: Float(try num("eps")), weightDecay: Float(try num("weight_decay")),
                               directions: Int(try num("directions")), oneSided: (h["one_sided"] as? Bool) ?? false)
        let base = BaseCheckpoint(path: (h["base_path"] as? String) ?? "", hash: (h["base_hash"] as? String) ?? "",
                                  format: (h["base_format"] as? String) ?? "", dtype: (h["dtype"] as? String) ?? "f32")
        var header = RunHeader(run: run, optimizer: .mezo(mezo), base: base, trainable: (h["trainable"] as? String) ?? "full", recordFields: ["g"])
        header.version = 1
        header.progress.completedSteps = (h["completed_steps"] as? Int) ?? 0
        header.progress.bestStep = (h["best_step"] as? Int) ?? 0
        header.progress.bestDev = (h["best_dev_accuracy"] as? Double) ?? -1
        header.progress.devBefore = (h["dev_accuracy_before"] as? Double) ?? 0
        return header
    }
}
