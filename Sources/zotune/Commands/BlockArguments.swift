import ArgumentParser
import ZOTuneTraining

/// Block-wise ZO (docs/blockwise.md): how θ is partitioned and which blocks a step moves.
struct BlockArguments: ParsableArguments {
    @Option(help: "Block-wise ZO: none, layer (each transformer layer; embeddings, final norm and head apart), attn-mlp (attention and MLP halves), tensor, whole (one block), or patterns (--block-patterns).")
    var blocks = "none"
    @Option(name: .customLong("block-patterns"), help: "With --blocks patterns: comma-separated name fragments, block i = tensors containing fragment i and no earlier one.")
    var blockPatterns: String?
    @Option(name: .customLong("block-schedule"), help: "per-step (every block its own forwards and update each step) or sequential (one block at a time for --block-steps steps).")
    var blockSchedule = "per-step"
    @Option(name: .customLong("block-steps"), help: "Sequential schedule: steps per block before the next (default 100).")
    var blockSteps: Int?
    @Flag(name: .customLong("block-reinit"), help: "Sequential schedule: re-initialise each block randomly when its turn starts (N(0, 0.02²), seeded by --seed).")
    var blockReinit = false

    func options(seed: UInt64) throws -> BlockwiseOptions? {
        guard blocks != "none" else {
            if blockPatterns != nil || blockSteps != nil || blockReinit || blockSchedule != "per-step" {
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
        if schedule == .perStep && (blockSteps != nil || blockReinit) {
            throw ValidationError("--block-steps and --block-reinit apply to --block-schedule sequential")
        }
        let steps = blockSteps ?? 100
        guard steps >= 1 else { throw ValidationError("--block-steps must be at least 1") }
        return BlockwiseOptions(level: level, patterns: patterns, schedule: schedule, stepsPerBlock: steps,
                                reinit: blockReinit ? InitOptions(seed: seed) : nil)
    }
}
