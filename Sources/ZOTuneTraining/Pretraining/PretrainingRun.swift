import Foundation
import ZOTuneBackend
import ZOTuneModels

/// One pre-training run as a value (docs/pretraining.md): corpus and tokenizer, the model (a shape,
/// a config.json, or a checkpoint to start from), the frozen tensors, blocks, optimizer, schedule
/// and output. `zotune pretrain` parses its flags (or a `--config` file: this value's JSON, keyed
/// by the option names without `--`) into one; every run writes its resolved form to config.json,
/// and that file given back to `--config` reruns the run bit for bit.
public struct PretrainingRun: Sendable, Equatable {
    // Corpus and windows
    public var corpus: String
    public var heldOutEvery = 10
    public var tokenizer: String
    public var seqLen = 128
    public var dataSeed: UInt64 = 0
    // Model: the shape (nil fields: LlamaShape's defaults), a config.json, or a checkpoint.
    public var modelConfig: String?
    public var layers: Int?
    public var hidden: Int?
    public var heads: Int?
    public var kvHeads: Int?
    public var intermediate: Int?
    public var maxPositions: Int?
    public var untied: Bool?
    /// Seed and std of the random initial weights, and of every block re-initialisation.
    public var initSeed: UInt64 = 0
    public var initStd: Float = 0.02
    /// A Hugging Face Llama checkpoint directory (config.json + model.safetensors) to start from
    /// instead of random weights; copied to RUN/init/, the run's base.
    public var initFrom: String?
    /// Name fragments of the frozen tensors: out of the trainable set, so out of every block.
    public var freeze: [String] = []
    // Trainable set, optimizer, schedule
    public var blocks: BlockwiseOptions?
    /// The sequential schedule's steps per block are one epoch: ⌈training windows / batch⌉.
    public var blockEpoch = false
    /// nil: MeZO with ε 1e-3.
    public var optimizer: OptimizerConfig?
    /// nil: 1e-6.
    public var lr: Float?
    public var batchSize = 16
    /// nil: one pass over the blocks with `blockEpoch` (blocks × epoch), else 1000.
    public var steps: Int?
    public var schedule = "constant"
    public var warmup = 0
    public var evalEvery = 0
    public var evalCount: Int?
    public var seed: UInt64 = 0
    public var saveEvery = 10
    public var keepLast = false
    public var out: String?

    public init(corpus: String, tokenizer: String, out: String? = nil) {
        self.corpus = corpus
        self.tokenizer = tokenizer
        self.out = out
    }

    /// The shape options that were given (named as on the command line).
    var shapeOptionsGiven: [String] {
        [("--model-config", modelConfig != nil), ("--layers", layers != nil), ("--hidden", hidden != nil), ("--heads", heads != nil),
         ("--kv-heads", kvHeads != nil), ("--intermediate", intermediate != nil), ("--max-positions", maxPositions != nil),
         ("--untied", untied != nil)].filter(\.1).map(\.0)
    }

    /// Defaults that depend on other options written out: lr, the optimizer, the re-init's seed and std.
    public func resolved() -> PretrainingRun {
        var r = self
        r.lr = lr ?? 1e-6
        r.optimizer = optimizer ?? OptimizerConfig.defaults(.mezo)
        // A re-initialised block draws from the model's own init options.
        if r.blocks?.reinit != nil { r.blocks!.reinit = InitOptions(seed: initSeed, std: initStd) }
        return r
    }

    public var shape: LlamaShape {
        LlamaShape(layers: layers ?? 6, hidden: hidden ?? 256, heads: heads ?? 4, kvHeads: kvHeads, intermediate: intermediate,
                   maxPositions: maxPositions ?? 256, tieEmbeddings: !(untied ?? false))
    }

    // MARK: validation

    /// Every range and cross-option rule, once; the error names the option.
    public func validate() throws {
        func fail(_ s: String) -> RunConfigError { RunConfigError(s) }
        // 1 would hold out every article and train on none.
        guard heldOutEvery >= 2 else { throw fail("--held-out-every must be at least 2 (got \(heldOutEvery))") }
        guard seqLen >= 1 else { throw fail("--seq-len must be at least 1 (got \(seqLen))") }
        if let initFrom, let first = shapeOptionsGiven.first {
            throw fail("--init-from \(initFrom) and \(first) conflict: the checkpoint's config.json sets the model's shape")
        }
        if modelConfig != nil, let first = shapeOptionsGiven.dropFirst().first {
            throw fail("--model-config and \(first) conflict: the config.json sets the model's shape")
        }
        for (name, value) in [("--layers", layers), ("--hidden", hidden), ("--heads", heads), ("--kv-heads", kvHeads),
                              ("--intermediate", intermediate), ("--max-positions", maxPositions)] {
            if let value, value < 1 { throw fail("\(name) must be at least 1 (got \(value))") }
        }
        if initFrom == nil && modelConfig == nil {
            // The weights must fit this machine: 4 bytes × layers × (4·hidden² + 3·hidden·intermediate),
            // the matrices alone. In Double, before LlamaShape: Int.max options would overflow its 8·hidden.
            let (h, l) = (Double(hidden ?? 256), Double(layers ?? 6))
            let mlp = intermediate.map(Double.init) ?? 8 * h / 3
            let memory = Double(ProcessInfo.processInfo.physicalMemory)
            if 4 * l * (4 * h * h + 3 * h * mlp) > memory {
                throw fail("--layers \(layers ?? 6) × --hidden \(hidden ?? 256) (--intermediate \(intermediate.map(String.init) ?? "default")): " +
                           "the weights exceed this machine's \(formatBytes(Int(memory))) of memory")
            }
            let positions = maxPositions ?? 256
            guard seqLen <= positions else { throw fail("--seq-len \(seqLen) exceeds --max-positions \(positions)") }
        }
        guard initStd > 0 && initStd.isFinite else { throw fail("--init-std must be positive (got \(initStd))") }
        if freeze.contains(where: \.isEmpty) { throw fail("--freeze: an empty name fragment would freeze every tensor") }
        if let b = blocks {
            if (b.level == .patterns) != !b.patterns.isEmpty { throw fail("--block-patterns goes with --blocks patterns, and it needs them") }
            guard b.stepsPerBlock >= 1 else { throw fail("--block-steps must be at least 1") }
            if b.reinit != nil && b.schedule != .sequential { throw fail("--block-reinit applies to --block-schedule sequential") }
        }
        if blockEpoch && blocks?.schedule != .sequential { throw fail("--block-steps epoch applies to --block-schedule sequential") }
        let optimizer = resolved().optimizer!
        do { try optimizer.validate() } catch let e as OptimizerOptionError { throw fail(e.message) }
        let lr = resolved().lr!
        guard LRSchedule(rawValue: schedule) != nil else { throw fail("--schedule must be constant, linear or cosine") }
        if let steps { guard steps >= 1 else { throw fail("--steps must be at least 1 (got \(steps))") } }
        guard batchSize >= 1 else { throw fail("--batch-size must be at least 1 (got \(batchSize))") }
        guard batchSize <= 1 << 20 else { throw fail("--batch-size must be at most \(1 << 20) (got \(batchSize))") }
        if let steps, steps.multipliedReportingOverflow(by: batchSize).overflow {
            throw fail("--steps \(steps) × --batch-size \(batchSize) windows overflow a 64-bit count")
        }
        guard lr.isFinite && lr > 0 else { throw fail("--lr must be a positive number (got \(lr))") }
        guard warmup >= 0 else { throw fail("--warmup must be 0 or more (got \(warmup))") }
        guard evalEvery >= 0 else { throw fail("--eval-every must be 0 (only at the end) or more (got \(evalEvery))") }
        if let evalCount, evalCount < 1 { throw fail("--eval-count must be at least 1 (got \(evalCount))") }
        guard saveEvery >= 1 else { throw fail("--save-every must be at least 1 (got \(saveEvery))") }
    }

    // MARK: building

    /// The model the run starts from: the checkpoint's config (checked), a config.json, or the shape.
    func modelConfiguration(tokenizer tok: any Tokenizer) throws -> ModelConfig {
        if let initFrom { return try InitCheckpoint.checkSource(initFrom, tokenizer: tok) }
        if let modelConfig {
            let c = try ModelConfig.fromHuggingFace(configJSON: URL(fileURLWithPath: modelConfig))
            guard c.architecture == .llama else { throw RunConfigError("--model-config \(modelConfig): pre-training builds Llama models, not \(c.architecture.rawValue)") }
            guard c.vocabSize >= tok.vocabSize else {
                throw RunConfigError("--model-config \(modelConfig): vocab_size \(c.vocabSize) is smaller than the tokenizer's \(tok.vocabSize) ids")
            }
            return c
        }
        return try shape.config(for: tok)
    }

    /// A resumed run must be the run its directory holds: its config.json, key by key (the first
    /// difference is refused naming the option). Runs written before config.json are left to the
    /// trajectory header's checks.
    func checkResume(_ dir: URL) throws {
        let url = dir.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return }
        guard case .object(let was)? = try? JSONDecoder().decode(JSONValue.self, from: data),
              case .object(let now) = try JSONDecoder().decode(JSONValue.self, from: try resolved().json()) else { return }
        for key in Set(was.keys).union(now.keys).sorted() where key != "out" && was[key] != now[key] {
            func text(_ v: JSONValue?) -> String {
                guard let v, v != .null else { return "unset" }
                return (try? String(decoding: JSONEncoder().encode(v), as: UTF8.self)) ?? "?"
            }
            throw RunConfigError("--\(key): the run in \(dir.path) was started with \(text(was[key])), now \(text(now[key])); resume it with its own options (its config.json)")
        }
    }

    /// Builds everything the run needs in `directory`: RUN/init/ (written or copied once), the
    /// model loaded from it, the windows, the optimizer over the unfrozen tensors and the trainer;
    /// writes config.json. `log` receives the lines worth telling.
    public func prepare(in directory: RunDirectory, on backend: KernelBackend, log: (String) -> Void = { _ in }) throws -> PretrainSession {
        try validate()
        var run = resolved()
        let text = try TextCorpus.load(corpus, heldOutEvery: heldOutEvery)
        if directory.resuming { try checkResume(directory.url) }
        let tok = try InitCheckpoint.tokenizer(tokenizer)
        let modelConfig = try modelConfiguration(tokenizer: tok)
        let initDir = directory.url.appendingPathComponent("init")
        if !FileManager.default.fileExists(atPath: initDir.appendingPathComponent("model.safetensors").path) {
            if directory.resuming { throw RunConfigError("\(initDir.path): missing; the run cannot be resumed without its initial model") }
            if let initFrom {
                try InitCheckpoint.copy(from: initFrom, tokenizerSource: tokenizer, to: initDir)
            } else {
                try InitCheckpoint.write(config: modelConfig, init: InitOptions(seed: initSeed, std: initStd), tokenizerSource: tokenizer, to: initDir)
            }
        } else if let initFrom, try checkpointHash(initFrom) != checkpointHash(initDir.path) {
            throw RunConfigError("--init-from \(initFrom) differs from the run's \(initDir.path) (content hash \(try checkpointHash(initFrom)) vs \(try checkpointHash(initDir.path)))")
        }
        let file = try ModelFile.open(initDir.path)
        guard file.config == modelConfig else { throw RunConfigError("\(initDir.path)/config.json differs from the requested model; use the run's options") }
        guard seqLen <= modelConfig.maxPositions else {
            throw RunConfigError("--seq-len \(seqLen) exceeds the model's \(modelConfig.maxPositions) positions (max_position_embeddings)")
        }
        let lm = try file.load(on: backend)
        let data = try CorpusData(corpus: text, tokenizer: tok, model: lm, length: seqLen, batchSize: batchSize, dataSeed: dataSeed,
                                  evalWindows: evalCount)
        let epoch = (data.train.count + batchSize - 1) / batchSize
        if blockEpoch { run.blocks!.stepsPerBlock = epoch }
        let base = BaseCheckpoint(path: initDir.path, hash: try checkpointHash(initDir.path), format: "hf", dtype: "f32", precision: lm.precision.rawValue)
        let config = run.optimizer!
        let optimizer: any ZOOptimizer
        do {
            optimizer = try run.blocks == nil && freeze.isEmpty ? config.make(model: lm)
                : config.make(set: try TrainableSet.full(lm, freezing: freeze), backend: backend, blocks: run.blocks)
        } catch let e as BlockError { throw RunConfigError(e.description) }
        let steps = self.steps ?? (blockEpoch ? (optimizer as! BlockwiseZO).blocks.count * epoch : 1000)
        let options = RunOptions(task: "pretrain:" + text.name, steps: steps, batchSize: batchSize, lr: run.lr!,
                                 schedule: LRSchedule(rawValue: schedule)!, warmupSteps: warmup, objective: .crossEntropy,
                                 evalEvery: evalEvery, evalCount: evalCount, seed: seed, dataSeed: dataSeed, saveEvery: saveEvery,
                                 maxLength: seqLen, keepBest: !keepLast)
        let trainer = try Trainer(model: lm, data: data, options: options, optimizer: optimizer, runDir: directory.url, base: base)
        trainer.dataFingerprint = DataFingerprint(options: ["--corpus": text.name, "--held-out-every": "\(heldOutEvery)", "--seq-len": "\(seqLen)"],
                                                  contentHash: data.contentHash)
        log("corpus: \(text.name): \(text.split); \(data.train.count) training windows of \(seqLen) tokens (\(data.trainTokens) tokens; an epoch is \(epoch) steps), \(data.heldOut.count) held-out windows")
        try resolved().write(to: directory.url.appendingPathComponent("config.json"))
        return PretrainSession(run: run, directory: directory, file: file, model: lm, data: data, optimizer: optimizer, trainer: trainer,
                               epochSteps: epoch)
    }

    /// Trains the run from the start in `out` (or continues it in `resume`) and finishes it.
    public func start(on backend: KernelBackend, resume: String? = nil, interrupt: () -> Bool = { false }) throws -> (TrainSummary, URL) {
        let dir = try RunDirectory(out: resume == nil ? out : nil, resume: resume, overwrite: false)
        if case .finished(let p) = dir.state { throw RunDirectoryError(dir.finishedNotice(p)) }
        let session = try prepare(in: dir, on: backend)
        let summary = try session.train(interrupt: interrupt)
        try session.finish(summary)
        return (summary, dir.url)
    }
}

/// A pre-training run built and ready to train.
public final class PretrainSession {
    /// Resolved: its lr, optimizer and block steps written out.
    public let run: PretrainingRun
    public let directory: RunDirectory
    public let file: ModelFile
    public let model: CausalLM
    public let data: CorpusData
    public let optimizer: any ZOOptimizer
    public let trainer: Trainer
    /// ⌈training windows / batch⌉.
    public let epochSteps: Int

    init(run: PretrainingRun, directory: RunDirectory, file: ModelFile, model: CausalLM, data: CorpusData, optimizer: any ZOOptimizer,
         trainer: Trainer, epochSteps: Int) {
        (self.run, self.directory, self.file, self.model, self.data) = (run, directory, file, model, data)
        (self.optimizer, self.trainer, self.epochSteps) = (optimizer, trainer, epochSteps)
    }

    public func train(interrupt: () -> Bool = { false }, progress: (StepReport) -> Void = { _ in }) throws -> TrainSummary {
        model.backend.ledger.resetPeaks()
        return try trainer.run(resume: directory.resuming, interrupt: interrupt, progress: progress)
    }

    /// Exports the best (or last) weights to RUN/model/, writes summary.json, marks the run finished.
    @discardableResult
    public func finish(_ summary: TrainSummary) throws -> [String: Any] {
        let runDir = directory.url
        try HFExport.write(model, file: file, to: runDir.appendingPathComponent("model"),
                           metadata: ["zotune_trajectory": "trajectory.zot", "zotune_step": String(summary.bestStep)])
        let json: [String: Any] = ["perplexity_before": summary.devBefore, "perplexity_after": summary.devAfter,
                                   "best_step": summary.bestStep, "best_perplexity": summary.bestDev, "seconds": summary.seconds,
                                   "parameters": model.weights.parameterCount, "trainable_parameters": trainer.set.parameterCount,
                                   "train_tokens": data.trainTokens, "epoch_steps": epochSteps,
                                   "forwards_per_step": optimizer.meanForwardsPerStep, "optimizer_config": run.optimizer!.description,
                                   "zo_peak_bytes": trainer.stepPeakBytes, "inference_peak_bytes": trainer.forwardPeakBytes]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), to: runDir.appendingPathComponent("summary.json"))
        try trainer.markFinished()
        return json
    }
}

/// A pretrain run file: one JSON object keyed by `zotune pretrain`'s options without their --
/// ("seq-len": 64), "blocks" and "optimizer" objects as in a train run file, "freeze" a list of
/// name fragments, and "block-epoch": true for `--block-steps epoch`. Unknown keys and wrong types
/// are refused naming the key.
extension PretrainingRun: Codable {
    public static let keys = ["corpus", "held-out-every", "tokenizer", "seq-len", "data-seed", "model-config", "layers", "hidden", "heads",
                              "kv-heads", "intermediate", "max-positions", "untied", "init-seed", "init-std", "init-from", "freeze",
                              "blocks", "block-epoch", "optimizer", "lr", "batch-size", "steps", "schedule", "warmup", "eval-every",
                              "eval-count", "seed", "save-every", "keep-last", "out"]
    typealias Key = TrainingRun.Key

    public init(from decoder: Decoder) throws {
        let r = try RunFileReader(decoder, keys: Self.keys, file: "a pretrain run file", command: "zotune pretrain")
        func get<T: Decodable>(_ key: String, _ type: T.Type = T.self) throws -> T? { try r.get(key, type) }
        func u64(_ key: String) throws -> UInt64? { try r.u64(key) }
        let typed = decoder.userInfo[.runFileFallbacks] as? [String: String] ?? [:]
        guard let corpus = try get("corpus", String.self) ?? typed["corpus"] else {
            throw RunConfigError("\"corpus\": missing (the text to pre-train on: give it in the file or with --corpus)")
        }
        guard let tokenizer = try get("tokenizer", String.self) ?? typed["tokenizer"] else {
            throw RunConfigError("\"tokenizer\": missing (a tokenizer.json or a model carrying one: give it in the file or with --tokenizer)")
        }
        self.init(corpus: corpus, tokenizer: tokenizer)
        heldOutEvery = try get("held-out-every") ?? heldOutEvery
        seqLen = try get("seq-len") ?? seqLen
        dataSeed = try u64("data-seed") ?? dataSeed
        modelConfig = try get("model-config")
        layers = try get("layers"); hidden = try get("hidden"); heads = try get("heads"); kvHeads = try get("kv-heads")
        intermediate = try get("intermediate"); maxPositions = try get("max-positions"); untied = try get("untied")
        initSeed = try u64("init-seed") ?? initSeed
        initStd = try get("init-std") ?? initStd
        initFrom = try get("init-from")
        freeze = try get("freeze") ?? freeze
        blockEpoch = try get("block-epoch") ?? blockEpoch
        lr = try get("lr")
        batchSize = try get("batch-size") ?? batchSize
        steps = try get("steps")
        schedule = try get("schedule") ?? schedule
        warmup = try get("warmup") ?? warmup
        evalEvery = try get("eval-every") ?? evalEvery
        evalCount = try get("eval-count")
        seed = try u64("seed") ?? seed
        saveEvery = try get("save-every") ?? saveEvery
        keepLast = try get("keep-last") ?? keepLast
        out = try get("out")
        if let b = try get("blocks", JSONValue.self), b != .null {
            if case .string("none") = b { blocks = nil } else {
                let level = try TrainingRun.name(of: b, key: "blocks", field: "level", known: BlockLevel.allCases.map(\.rawValue) + ["none"])
                blocks = level == "none" ? nil
                    : try TrainingRun.overlay(b, on: BlockwiseOptions(level: BlockLevel(rawValue: level)!), key: "blocks", field: "level")
            }
        }
        if let o = try get("optimizer", JSONValue.self), o != .null {
            let name = try TrainingRun.name(of: o, key: "optimizer", known: OptimizerKind.allCases.map(\.rawValue))
            optimizer = try TrainingRun.overlay(o, on: OptimizerConfig.defaults(OptimizerKind(rawValue: name)!), key: "optimizer")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        func put<T: Encodable>(_ key: String, _ value: T?) throws { try c.encodeIfPresent(value, forKey: Key(key)) }
        try put("corpus", corpus); try put("held-out-every", heldOutEvery); try put("tokenizer", tokenizer); try put("seq-len", seqLen)
        try put("data-seed", String(dataSeed)); try put("model-config", modelConfig); try put("layers", layers); try put("hidden", hidden)
        try put("heads", heads); try put("kv-heads", kvHeads); try put("intermediate", intermediate); try put("max-positions", maxPositions)
        try put("untied", untied); try put("init-seed", String(initSeed)); try put("init-std", initStd); try put("init-from", initFrom)
        try put("freeze", freeze); try put("blocks", blocks); try put("block-epoch", blockEpoch); try put("optimizer", optimizer)
        try put("lr", lr); try put("batch-size", batchSize); try put("steps", steps); try put("schedule", schedule); try put("warmup", warmup)
        try put("eval-every", evalEvery); try put("eval-count", evalCount); try put("seed", String(seed)); try put("save-every", saveEvery)
        try put("keep-last", keepLast); try put("out", out)
    }

    /// The run in a file (`pretrain --config`); an error names the file and the key. `fallbacks`:
    /// "corpus" and "tokenizer" as the command line gives them, used where the file has none.
    public static func load(_ url: URL, fallbacks: [String: String] = [:]) throws -> PretrainingRun {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FileError(path: url.path, cause: FileError.cause(of: error) ?? "cannot be read") }
        let decoder = JSONDecoder()
        decoder.userInfo[.runFileFallbacks] = fallbacks
        do { return try decoder.decode(PretrainingRun.self, from: data) } catch let e as RunConfigError {
            throw RunConfigError("\(url.path): \(e.description)")
        } catch let e as DecodingError {
            throw RunConfigError("\(url.path): \(TrainingRun.reason(e, expected: PretrainingRun.self))")
        }
    }

    /// config.json's JSON: sorted keys, one per line.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    public func write(to url: URL) throws { try AtomicFile.write(try json(), to: url) }
}
