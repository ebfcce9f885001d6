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
    /// The attention window `--sliding-window` gave a file that states none (nil: the file's own
    /// attention, and trajectories written before it was recorded). Every forward depends on it:
    /// resume keeps it, replay loads the base with it.
    public var slidingWindow: Int?

    public init(path: String, hash: String, format: String, dtype: String, precision: String? = nil, slidingWindow: Int? = nil) {
        self.path = path
        self.hash = hash
        self.format = format
        self.dtype = dtype
        self.precision = precision
        self.slidingWindow = slidingWindow
    }

    enum CodingKeys: String, CodingKey { case path, hash, format, dtype, precision, slidingWindow = "sliding_window" }
}

/// How far a run got: rewritten with every save.
public struct RunProgress: Sendable, Equatable, Codable {
    public var completedSteps = 0
    public var bestStep = 0
    /// Best dev metric (accuracy or F1) and the step it was reached at (0: the base).
    public var bestDev = -1.0
    public var devBefore = 0.0
    /// Set (true) once the run's ending is written (test evaluation, export, summary): resuming it
    /// again has nothing to do. nil in runs still going and in trajectories older than the flag.
    public var finished: Bool?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case completedSteps = "completed_steps", bestStep = "best_step", bestDev = "best_dev", devBefore = "dev_before", finished
    }
}

/// What a run trained and was judged on, apart from RunOptions: the options that choose the data
/// (by their command-line names, e.g. "--train-count": "1000") and a hash of the examples drawn
/// (or of the corpus), so a resume over other data is refused even when the files changed
/// under the same options.
public struct DataFingerprint: Sendable, Equatable, Codable {
    public var options: [String: String]
    public var contentHash: String

    public init(options: [String: String], contentHash: String) {
        self.options = options
        self.contentHash = contentHash
    }

    enum CodingKeys: String, CodingKey { case options, contentHash = "content_hash" }

    /// A stable 64-bit hash of strings (length-prefixed, so ["ab", "c"] ≠ ["a", "bc"]).
    public static func hash(_ parts: [String]) -> String {
        var h: UInt64 = 0xDA7A_F1F0
        for p in parts {
            var bytes = Array(p.utf8)
            var n = UInt64(bytes.count)
            h = withUnsafeBytes(of: &n) { zt_hash64($0.baseAddress, 8, h) }
            h = bytes.withUnsafeMutableBytes { zt_hash64($0.baseAddress, UInt64($0.count), h) }
        }
        return String(format: "%016llx", h)
    }
}

/// Why a run cannot be resumed with other options: the option (as typed on the command line)
/// and the run's and today's values.
public struct ResumeMismatch: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let option: String
    public let was: String
    public let now: String
    public let hint: String

    public init(file: String, option: String, was: String, now: String, hint: String = "") {
        self.file = file
        self.option = option
        self.was = was
        self.now = now
        self.hint = hint
    }

    public var description: String {
        "\(file): \(option): the run was started with \(was), not \(now); resume with the run's value" + (hint.isEmpty ? "" : " (\(hint))")
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
    /// The data the run is on (nil in trajectories written before it was recorded: not checked).
    public var data: DataFingerprint?
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
        case recordFields = "record_fields", replayable, peft, blocks, data, progress
    }

    /// The first way `now` (a run about to resume this one) would not be the same run, naming
    /// the option; nil when it is the same. Everything that changes the updates, the data or
    /// what the run reports is compared.
    public func resumeMismatch(_ now: RunHeader, file: String) -> ResumeMismatch? {
        func m(_ option: String, _ was: String, _ now: String, _ hint: String = "") -> ResumeMismatch {
            ResumeMismatch(file: file, option: option, was: was, now: now, hint: hint)
        }
        if let d = run.differences(now.run).first { return m(d.option, d.was, d.now) }
        if optimizer != now.optimizer {
            if optimizer.kind != now.optimizer.kind { return m("--optimizer", optimizer.kind.rawValue, now.optimizer.kind.rawValue) }
            let a = optimizer.fields, b = now.optimizer.fields
            if let k = Set(a.keys).union(b.keys).sorted().first(where: { a[$0] != b[$0] }) {
                return m("optimizer \(optimizer.kind.rawValue) \(k)", a[k] ?? "unset", b[k] ?? "unset")
            }
            return m("--optimizer", optimizer.description, now.optimizer.description)
        }
        if peft != now.peft { return m("--peft", peft?.description ?? "none (full tuning)", now.peft?.description ?? "none (full tuning)") }
        if blocks != now.blocks { return m("--blocks", blocks?.summary ?? "none", now.blocks?.summary ?? "none") }
        if trainable != now.trainable { return m("trainable set", trainable, now.trainable) }
        if base.hash != now.base.hash {
            return m("--model", "\(base.path) (content hash \(base.hash))", "\(now.base.path) (content hash \(now.base.hash))")
        }
        // Storage and GEMM precision set the forwards' numerics: a run continued under others would
        // not be the run its trajectory describes (and replay would not rebuild its weights).
        if base.dtype != now.base.dtype {
            return m("--dtype", base.dtype, now.base.dtype, "auto keeps a bf16/f16 checkpoint on CUDA and is f32 elsewhere: pass --dtype \(base.dtype)")
        }
        if let was = base.precision, let is_ = now.base.precision, was != is_ {
            return m("--precision", was, is_, "auto is mixed on CUDA, f32 on the CPU: pass --precision \(was)")
        }
        if base.slidingWindow != now.base.slidingWindow {
            return m("--sliding-window", base.slidingWindow.map { "\($0)" } ?? "none (the file's attention)",
                     now.base.slidingWindow.map { "\($0)" } ?? "none (the file's attention)")
        }
        if let saved = data, let current = now.data {
            let a = saved.options, b = current.options
            if let k = Set(a.keys).union(b.keys).sorted().first(where: { a[$0] != b[$0] }) {
                return m(k, a[k] ?? "unset", b[k] ?? "unset")
            }
            if saved.contentHash != current.contentHash {
                return m("data (content hash of the examples)", saved.contentHash, current.contentHash,
                         "the data files changed since the run started")
            }
        }
        return nil
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
