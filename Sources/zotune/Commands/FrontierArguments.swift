import ArgumentParser
import ZOTuneTraining

/// The options of fzoo, sparse-mezo, mezo-svrg, lowrank-spsa, lozo and subzero (docs/optimizers.md); ranges are the library's.
struct FrontierArguments: ParsableArguments {
    @Option(help: "fzoo: one-sided Rademacher probes per step, N (2–64; default 8).")
    var probes: Int?
    @Option(name: .customLong("min-std"),
            help: "fzoo: a step whose N losses spread (population std) by at most this is skipped instead of dividing by ~0 (default 1e-6).")
    var minStd: Float?
    @Option(help: "sparse-mezo: the fraction of each tensor left out; the rest (smallest |θ|) is perturbed and updated (default 0.8).")
    var sparsity: Double?
    @Option(name: .customLong("anchor-every"), help: "mezo-svrg: a full (anchor) step every q steps (default 2).")
    var anchorEvery: Int?
    @Option(name: .customLong("anchor-batches"), help: "mezo-svrg: minibatches averaged for the anchor's estimate (default 4).")
    var anchorBatches: Int?
    @Option(name: .customLong("anchor-lr-scale"), help: "mezo-svrg: the anchor step's lr over the minibatch steps' (default 10).")
    var anchorLRScale: Float?
    @Option(help: "lowrank-spsa, lozo, subzero: the rank r of each low-rank direction (defaults 1, 2, 8; q is --directions, defaults 4, 1, 1).")
    var rank: Int?
    @Option(help: "lozo: ν, the steps each V_k is kept for (default 50).")
    var window: Int?
    @Option(name: .customLong("refresh-every"), help: "subzero: the steps each pair of orthonormal bases U, V is kept for (default 2000).")
    var refreshEvery: Int?

    var given: GivenFlags {
        typed([("--probes", probes), ("--min-std", minStd), ("--sparsity", sparsity), ("--anchor-every", anchorEvery),
               ("--anchor-batches", anchorBatches), ("--anchor-lr-scale", anchorLRScale), ("--rank", rank),
               ("--window", window), ("--refresh-every", refreshEvery)])
    }
}
