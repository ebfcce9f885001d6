import Foundation
import ZOTuneModels

/// Options typed on a command line over a run file (`zotune train --config run.json --lr 2e-3`):
/// which options a run file holds, and how each typed one replaces the file's value.
extension TrainingRun {
    public typealias Overlay = @Sendable (inout TrainingRun, TrainingRun) -> Void

    /// The options that set one field each, by their command-line name.
    public static let plainOptions: [String: Overlay] = [
        "--model": { $0.model = $1.model }, "--dtype": { $0.dtype = $1.dtype }, "--precision": { $0.precision = $1.precision },
        "--sliding-window": { $0.slidingWindow = $1.slidingWindow },
        "--task": { $0.task = $1.task }, "--data-dir": { $0.dataDir = $1.dataDir }, "--task-file": { $0.taskFile = $1.taskFile },
        "--train-file": { $0.trainFile = $1.trainFile }, "--dev-file": { $0.devFile = $1.devFile }, "--test-file": { $0.testFile = $1.testFile },
        "--template": { $0.template = $1.template }, "--labels": { $0.labels = $1.labels }, "--data-seed": { $0.dataSeed = $1.dataSeed },
        "--train-count": { $0.trainCount = $1.trainCount }, "--dev-count": { $0.devCount = $1.devCount }, "--test-count": { $0.testCount = $1.testCount },
        "--lr": { $0.lr = $1.lr }, "--batch-size": { $0.batchSize = $1.batchSize }, "--steps": { $0.steps = $1.steps },
        "--schedule": { $0.schedule = $1.schedule }, "--warmup": { $0.warmup = $1.warmup }, "--objective": { $0.objective = $1.objective },
        "--max-length": { $0.maxLength = $1.maxLength }, "--eval-every": { $0.evalEvery = $1.evalEvery }, "--eval-count": { $0.evalCount = $1.evalCount },
        "--seed": { $0.seed = $1.seed }, "--save-every": { $0.saveEvery = $1.saveEvery }, "--keep-last": { $0.keepLast = $1.keepLast },
        "--distributed": { $0.distributed = $1.distributed }, "--check-replicas-every": { $0.checkReplicasEvery = $1.checkReplicasEvery },
        "--out": { $0.out = $1.out },
    ]
    public static let peftOptions: Set<String> = ["--peft", "--lora-rank", "--lora-alpha", "--lora-targets", "--prefix-tokens", "--prompt-tokens", "--peft-seed"]
    public static let blockOptions: Set<String> = ["--blocks", "--block-patterns", "--block-schedule", "--block-steps", "--block-reinit"]
    /// Where the process runs, not what it computes: never in a run file.
    public static let launchOptions: Set<String> = ["--config", "--resume", "--overwrite", "--device", "--threads", "--help"]
    /// The optimizer's options: --optimizer, --eps and every optimizer's own flags.
    public static let optimizerOptions = Set(["--optimizer", "--eps"] + OptimizerSpec.all.flatMap { $0.flags.map(\.flag) })

    /// This run (a run file's, read from `source`) with the options in `typed` taken from `flags`,
    /// the command line's run: plain options field by field; the adapter's typed fields over the
    /// file's adapter (another --peft: the command line's adapter); the command line's block
    /// options when any is typed (a block re-init follows a typed --seed); the optimizer through
    /// `optimizer(file's optimizer, resulting adapter)`, which puts the typed optimizer options
    /// over the file's. An option a run file cannot hold, or a result that does not validate, is
    /// refused naming the option.
    public func overlaid(by flags: TrainingRun, typed: Set<String>, source: String,
                         optimizer: (OptimizerConfig?, PEFTConfig?) throws -> OptimizerConfig) throws -> TrainingRun {
        let known = Set(Self.plainOptions.keys).union(Self.peftOptions).union(Self.blockOptions).union(Self.optimizerOptions).union(Self.launchOptions)
        if let option = typed.subtracting(known).sorted().first {
            throw RunConfigError("\(option) cannot be combined with --config: give it in the run file")
        }
        var run = self
        for option in typed { Self.plainOptions[option]?(&run, flags) }
        if !typed.isDisjoint(with: Self.peftOptions) { run.peft = Self.overlay(flags.peft, on: peft, typed: typed) }
        if !typed.isDisjoint(with: Self.blockOptions) { run.blocks = flags.blocks }
        if typed.contains("--seed"), var b = run.blocks, b.reinit != nil { b.reinit!.seed = run.seed; run.blocks = b }
        if !typed.isDisjoint(with: Self.optimizerOptions) { run.optimizer = try optimizer(run.optimizer, run.peft) }
        do { try run.validate() } catch let e as RunConfigError { throw RunConfigError("\(e.description) (in \(source) or on the command line)") }
        return run
    }

    /// The typed fields of `flags` over `base` when both are the same method; else `flags`.
    static func overlay(_ flags: PEFTConfig?, on base: PEFTConfig?, typed: Set<String>) -> PEFTConfig? {
        switch (base, flags) {
        case (.lora(var o)?, .lora(let f)?):
            if typed.contains("--lora-rank") { o.rank = f.rank }
            if typed.contains("--lora-alpha") { o.alpha = f.alpha }
            if typed.contains("--lora-targets") { o.targets = f.targets }
            if typed.contains("--peft-seed") { o.seed = f.seed }
            return .lora(o)
        case (.prefix(var o)?, .prefix(let f)?):
            if typed.contains("--prefix-tokens") { o.tokens = f.tokens }
            if typed.contains("--peft-seed") { o.seed = f.seed }
            return .prefix(o)
        case (.prompt(var o)?, .prompt(let f)?):
            if typed.contains("--prompt-tokens") { o.tokens = f.tokens }
            if typed.contains("--peft-seed") { o.seed = f.seed }
            return .prompt(o)
        default: return flags
        }
    }
}
