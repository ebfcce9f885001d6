import Foundation
import ZOTuneBackend
import ZOTuneModels

/// A run built and ready to train: its directory, model, adapter, optimizer and trainer.
/// `train` runs (or resumes) it; `finish` exports the weights (or the adapter), writes summary.json
/// and marks the run finished.
public final class RunSession {
    /// The run with its defaults resolved: what config.json holds.
    public let run: TrainingRun
    public let directory: RunDirectory
    public let file: ModelFile
    public let model: CausalLM
    public let adapter: (any PEFTAdapter)?
    public let optimizer: any ZOOptimizer
    public let trainer: Trainer
    public let splits: TaskSplits
    /// False on the replicas of a data-parallel run other than rank 0: they write nothing.
    public let writer: Bool

    init(run: TrainingRun, directory: RunDirectory, file: ModelFile, model: CausalLM, adapter: (any PEFTAdapter)?,
         optimizer: any ZOOptimizer, trainer: Trainer, splits: TaskSplits, writer: Bool) {
        (self.run, self.directory, self.file, self.model, self.adapter) = (run, directory, file, model, adapter)
        (self.optimizer, self.trainer, self.splits, self.writer) = (optimizer, trainer, splits, writer)
    }

    public var config: OptimizerConfig { run.optimizer! }

    /// Runs the steps (continuing a resumed run); `interrupt` is asked after every step.
    public func train(interrupt: () -> Bool = { false }, progress: (StepReport) -> Void = { _ in }) throws -> TrainSummary {
        model.backend.ledger.resetPeaks()
        return try trainer.run(resume: directory.resuming, interrupt: interrupt, progress: progress)
    }

    /// The memory of the run's steps beside an inference-only forward of the same minibatch and
    /// first-order Adam. nil when no step ran in this process (a resume that found every step done):
    /// there is no peak, and a 0 would read as a ratio of billions.
    public var memoryReport: MemoryReport? {
        guard trainer.stepPeakBytes > 0 else { return nil }
        let shape = trainer.firstBatchShape()
        return MemoryReport(zoPeakBytes: trainer.stepPeakBytes, inferencePeakBytes: trainer.forwardPeakBytes,
                            foAdamBytes: MemoryReport.foAdamBytes(config: model.config, parameters: trainer.set.parameterCount,
                                                                  frozenBytes: adapter == nil ? 0 : model.weights.bytes,
                                                                  batch: shape.sequences, seqLen: shape.length),
                            weightBytes: model.weights.bytes, optimizer: config.kind.rawValue, stateBytes: optimizer.stateBytes)
    }

    /// Exports the best (or last) weights — the adapter in HF PEFT format, else the model in HF
    /// format — writes summary.json and marks the run finished. Writes nothing on a non-writer.
    @discardableResult
    public func finish(_ summary: TrainSummary) throws -> [String: Any] {
        let report = memoryReport
        var json = report?.json ?? [:]
        json["dev_before"] = summary.devBefore
        json["dev_after"] = summary.devAfter
        json["best_step"] = summary.bestStep
        json["test"] = summary.test?.metric ?? NSNull()
        json["seconds"] = summary.seconds
        json["inference_peak_excludes_state"] = true
        json["forwards_per_step"] = optimizer.meanForwardsPerStep
        json["optimizer_config"] = config.description
        guard writer else { return json }
        let runDir = directory.url
        let metadata = ["zotune_trajectory": "trajectory.zot", "zotune_step": String(summary.bestStep)]
        if let adapter {
            try PEFTExport.write(adapter, model: model, baseModel: file.path, to: runDir.appendingPathComponent("adapter"), metadata: metadata)
        } else {
            try HFExport.write(model, file: file, to: runDir.appendingPathComponent("model"), metadata: metadata)
        }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), to: runDir.appendingPathComponent("summary.json"))
        try trainer.markFinished()
        return json
    }
}

/// What `TrainingRun.start` and `resume` return.
public struct RunResult {
    public let summary: TrainSummary
    /// summary.json's fields.
    public let fields: [String: Any]
    public let directory: URL
}

extension TrainingRun {
    /// The run directory: `out` for a new run (refused if it holds one, unless `overwrite`), or
    /// `resume`. Its state says whether the run is finished already.
    public func openDirectory(resume: String? = nil, overwrite: Bool = false, lock: Bool = true) throws -> RunDirectory {
        try RunDirectory(out: out, resume: resume, overwrite: overwrite, lock: lock)
    }

    /// Builds everything the run needs in `directory` on `backend`: data, model, adapter,
    /// optimizer and trainer; writes config.json (the resolved run) when `writer`. `log` receives
    /// the lines worth telling (the data drawn).
    public func prepare(in directory: RunDirectory, on backend: KernelBackend, writer: Bool = true,
                        log: (String) -> Void = { _ in }) throws -> RunSession {
        try validate()
        let run = resolved()
        let options = try runOptions()
        let (file, windowSet) = try openModel()
        let tokenizer = try file.requireTokenizer()
        let splits = try loadData()
        // Dev accuracy before and after, and the best step, are measured on dev: a run needs one.
        guard !splits.dev.isEmpty else {
            throw RunConfigError("--dev-count: the dev split of \(splits.task) is empty (--dev-count \(devCount), --train-count \(trainCount), " +
                                 "\(splits.train.count) train examples drawn); a run measures dev \(splits.train.first?.isGeneration == true ? "F1" : "accuracy") " +
                                 "before and after training: leave it at least one example")
        }
        for note in splits.notes { log("data: \(note)") }
        log("data: \(splits.train.count) train, \(splits.dev.count) dev, \(splits.test.count) test examples of \(splits.task)")
        // auto resolved for this checkpoint on this device; the header records the result, never "auto".
        let (_, storage, lm) = try loadModel(on: backend, file: file)
        log("storage: \(storage)")
        let adapter = try makeAdapter(model: lm)
        let optimizer = try run.makeOptimizer(model: lm, adapter: adapter)
        let base = BaseCheckpoint(path: file.path, hash: try checkpointHash(file.path), format: file.format.rawValue,
                                  dtype: storage.dtypeName, precision: lm.precision.rawValue, slidingWindow: windowSet)
        let trainer = try Trainer(model: lm, tokenizer: tokenizer, splits: splits, options: options, optimizer: optimizer,
                                  runDir: directory.url, base: base, adapter: adapter)
        trainer.dataFingerprint = DataFingerprint(options: dataFingerprintOptions, contentHash: splits.contentHash)
        trainer.writesFiles = writer
        // A resume with other options is refused before config.json is rewritten: the file keeps
        // describing the run its trajectory holds (the trainer checks again when it resumes).
        if directory.resuming, let m = try TrajectoryFile.read(trainer.trajectoryURL).header.resumeMismatch(trainer.header, file: trainer.trajectoryURL.path) {
            throw m
        }
        if writer { try run.write(to: directory.url.appendingPathComponent("config.json")) }
        return RunSession(run: run, directory: directory, file: file, model: lm, adapter: adapter, optimizer: optimizer,
                          trainer: trainer, splits: splits, writer: writer)
    }

    /// Trains the run from the start in `out` and finishes it (export, summary.json).
    public func start(on backend: KernelBackend, progress: (StepReport) -> Void = { _ in }) throws -> RunResult {
        try complete(try openDirectory(), on: backend, progress: progress)
    }

    /// Continues the interrupted run in `dir` (same options) and finishes it.
    public func resume(_ dir: String, on backend: KernelBackend, progress: (StepReport) -> Void = { _ in }) throws -> RunResult {
        try complete(try openDirectory(resume: dir), on: backend, progress: progress)
    }

    private func complete(_ dir: RunDirectory, on backend: KernelBackend, progress: (StepReport) -> Void) throws -> RunResult {
        if case .finished(let p) = dir.state { throw RunDirectoryError(dir.finishedNotice(p)) }
        let session = try prepare(in: dir, on: backend)
        let summary = try session.train(progress: progress)
        return RunResult(summary: summary, fields: try session.finish(summary), directory: dir.url)
    }

    /// Rebuilds a run's tuned weights (or its adapter) from the base checkpoint and its trajectory,
    /// without data or forwards, into `out` (HF format, or HF PEFT format for an adapter run).
    /// Up to the best dev step unless `allSteps`. Returns the records replayed and the parameters moved.
    public static func replay(trajectory: URL, base: String, to out: URL, allSteps: Bool = false,
                              on backend: KernelBackend) throws -> (records: [ZORecord], header: RunHeader, parameters: Int) {
        let traj = try TrajectoryFile.read(trajectory)
        let h = traj.header
        if h.optimizer.kind == .zoop {
            throw RunConfigError("\(trajectory.path): zoop steps depend on activations and cannot be replayed; the run directory holds the weights (model/, trainable.safetensors)")
        }
        let hash = try checkpointHash(base)
        guard h.base.hash == hash else {
            throw RunConfigError("\(base) has content hash \(hash), but the trajectory was trained from \(h.base.hash) (\(h.base.path))")
        }
        let keepBlocks = h.base.dtype == "gguf"
        guard let dtype = keepBlocks ? .f32 : DType(rawValue: h.base.dtype) else {
            throw RunConfigError("\(trajectory.path): base.dtype: unknown dtype \(h.base.dtype)")
        }
        // The window the run set (--sliding-window): the export's config is the run's.
        let file = try ModelFile.open(base).overridingSlidingWindow(h.base.slidingWindow)
        let lm = try file.load(on: backend, dtype: dtype, keepBlocks: keepBlocks)
        let adapter = try h.peft?.make(model: lm)
        lm.hook = adapter
        // Built as train built it, over the trainable set the header names.
        let optimizer = try makeOptimizer(h.optimizer, model: lm, adapter: adapter, blocks: h.blocks,
                                          set: adapter == nil ? try TrainableSet.from(spec: h.trainable, model: lm) : nil)
        let upTo = allSteps ? Int.max : h.progress.bestStep
        let records = traj.records.filter { Int($0.step) < upTo }
        optimizer.replay(records)
        backend.synchronize()
        // The same metadata as train's export, so a replay of the same steps is byte-identical to it.
        let step = allSteps ? h.progress.completedSteps : h.progress.bestStep
        let metadata = ["zotune_trajectory": trajectory.lastPathComponent, "zotune_step": String(step)]
        if let adapter {
            try PEFTExport.write(adapter, model: lm, baseModel: file.path, to: out, metadata: metadata)
        } else {
            try HFExport.write(lm, file: file, to: out, metadata: metadata)
        }
        return (records, h, optimizer.set.parameterCount)
    }
}
