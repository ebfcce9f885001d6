import ArgumentParser
import ZOTuneTraining

/// Block-wise ZO (docs/blockwise.md): how θ is partitioned and which blocks a step moves.
struct BlockArguments: ParsableArguments {
    @Option(help: "Block-wise ZO: none, layer (each transformer layer; embeddings, final norm and head apart), layer+norm (the final norm with the last layer), attn-mlp (attention and MLP halves), tensor, whole (one block), or patterns (--block-patterns).")
    var blocks = "none"
    @Option(name: .customLong("block-patterns"), help: "With --blocks patterns: comma-separated name fragments, block i = tensors containing fragment i and no earlier one.")
    var blockPatterns: String?
    @Option(name: .customLong("block-schedule"), help: "per-step (every block its own forwards and update each step) or sequential (one block at a time for --block-steps steps).")
    var blockSchedule = "per-step"
    @Option(name: .customLong("block-steps"), help: "Sequential schedule: steps per block before the next (default 100; pretrain also takes epoch: one pass over the training windows).")
    var blockStepsText: String?
    /// A number of steps (nil: the default, or epoch).
    var blockSteps: Int? {
        get { blockStepsText.flatMap { Int($0) } }
        set { blockStepsText = newValue.map(String.init) }
    }
    @Flag(name: .customLong("block-reinit"), help: "Sequential schedule: re-initialise each block randomly when its turn starts (N(0, 0.02²), seeded by --seed).")
    var blockReinit = false

    /// `--block-steps epoch` (pretrain: the caller resolves it to steps once the data is known).
    var epochSteps: Bool { blockStepsText == "epoch" }

    /// `epoch`: the steps of one epoch, where `--block-steps epoch` is allowed (pretrain).
    func options(seed: UInt64, epoch: Int? = nil) throws -> BlockwiseOptions? {
        guard blocks != "none" else {
            if blockPatterns != nil || blockStepsText != nil || blockReinit || blockSchedule != "per-step" {
                throw ValidationError("--block-patterns, --block-schedule, --block-steps and --block-reinit need --blocks")
            }
            return nil
        }
        guard let level = BlockLevel(rawValue: blocks) else {
            throw ValidationError("--blocks must be none, " + BlockLevel.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let schedule = BlockwiseOptions.Schedule(rawValue: blockSchedule) else {
            throw ValidationError("--block-schedule must be per-step or sequential")
        }
        let patterns = blockPatterns.map { $0.split(separator: ",").map(String.init).filter { !$0.isEmpty } } ?? []
        if (level == .patterns) != !patterns.isEmpty { throw ValidationError("--block-patterns goes with --blocks patterns, and it needs them") }
        if schedule == .perStep && (blockStepsText != nil || blockReinit) {
            throw ValidationError("--block-steps and --block-reinit apply to --block-schedule sequential")
        }
        let steps: Int
        if epochSteps {
            guard let epoch else { throw ValidationError("--block-steps epoch applies to pretrain; give a number of steps") }
            steps = epoch
        } else if let text = blockStepsText {
            guard let n = Int(text) else { throw ValidationError("--block-steps must be a whole number of steps\(epoch == nil ? "" : " or epoch") (got \(text))") }
            steps = n
        } else { steps = 100 }
        guard steps >= 1 else { throw ValidationError("--block-steps must be at least 1") }
        return BlockwiseOptions(level: level, patterns: patterns, schedule: schedule, stepsPerBlock: steps,
                                reinit: blockReinit ? InitOptions(seed: seed) : nil)
    }
}
