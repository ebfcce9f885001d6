import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// `zotune stream`: the perturbation directions z a run uses, written as safetensors, so another
/// implementation (a PyTorch reference, a port) can be checked against ZOTune's stream.
struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Write the z directions of steps (or of one seed) to a safetensors file.",
        discussion: """
        Tensors are named "step<t>/<name>" (z of step t, direction 0, from --run-seed as training derives it) or \
        "<name>" with --seed. Names and shapes come from the trainable set of --model, or are one --name of --count elements.
        """)

    @Option(help: "Model whose trainable tensors (full set) to cover.")
    var model: String?
    @Option(help: "A single tensor name (its z-stream id is the FNV-1a hash of the name).")
    var name: String?
    @Option(help: "Elements of --name.")
    var count = 0
    @Option(name: .customLong("run-seed"), help: "Run seed: writes steps 0 ..< --steps.")
    var runSeed: UInt64?
    @Option(help: "Steps to write with --run-seed.")
    var steps = 1
    @Option(help: "A raw 64-bit step seed instead of --run-seed.")
    var seed: UInt64?
    @Option(help: "Output .safetensors file.")
    var out: String

    func run() throws {
        guard (runSeed == nil) != (seed == nil) else { throw ValidationError("give exactly one of --run-seed and --seed") }
        guard (model == nil) != (name == nil) else { throw ValidationError("give exactly one of --model and --name") }
        guard runSeed == nil || steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        // Every step's tensors are held until the file is written.
        guard runSeed == nil || steps <= 1_000_000 else { throw ValidationError("--steps must be at most 1000000 (got \(steps))") }
        let backend = KernelBackend.cpu()
        var targets: [(name: String, shape: [Int])] = []
        if let model {
            let lm = try ModelFile.open(model).load(on: backend)
            targets = TrainableSet.full(lm).entries.map { ($0.name, $0.tensor.shape) }
        } else if let name {
            guard count > 0 else { throw ValidationError("--count must be positive") }
            guard count <= Int(ProcessInfo.processInfo.physicalMemory / 4) else {
                throw ValidationError("--count \(count): \(count) f32 values exceed this machine's \(formatBytes(Int(ProcessInfo.processInfo.physicalMemory))) of memory")
            }
            targets = [(name, [count])]
        }
        let seeds: [(prefix: String, seed: UInt64)] = runSeed.map { r in (0..<steps).map { ("step\($0)/", stepSeed(runSeed: r, step: $0, direction: 0)) } }
            ?? [("", seed!)]
        var tensors: [(String, Tensor)] = []
        for (prefix, s) in seeds {
            for t in targets {
                let z = try backend.allocate(t.shape, dtype: .f32, tag: .scratch)
                backend.fillNormal(z, seed: s, tensorId: TrainableSet.tensorId(t.name), stream: 0, scale: 1)
                tensors.append((prefix + t.name, z))
            }
        }
        var meta = ["z_stream_version": String(zStreamVersion)]
        for (prefix, s) in seeds where !prefix.isEmpty { meta["seed_" + String(prefix.dropLast())] = String(s) }
        try AtomicFile.write(try HFExport.safetensors(tensors, backend: backend, metadata: meta), to: URL(fileURLWithPath: out))
        print("wrote \(tensors.count) tensors to \(out)")
    }
}
