import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Microbenchmarks (build with -c release).",
        subcommands: [BenchKernels.self, BenchForward.self, BenchStep.self, BenchOptimizers.self, BenchLowRank.self]
    )
}
