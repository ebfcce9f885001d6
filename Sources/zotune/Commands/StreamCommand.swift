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
        "<name>" with --seed. Names and shapes come from the trainable set of --model, or are one --name of --count elements. \
        --rademacher N adds FZOO's N sign probes ("step<t>/rademacher<k>/<name>"); --lowrank-directions q (with --model) \
        adds the low-rank factors of the linear matrices ("step<t>/lowrank/<name>/A", q·r × rows, rows k·r … are A_kᵀ; \
        ".../B", q·r × cols); with --subzero, SubZero's factors instead: "step<t>/subzero/<name>/U" (rows × r) and ".../V" \
        (cols × r), the orthonormal bases of a window starting at step t, and ".../z0" (q·r × r, rows k·r … are z0_k of step t).
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
    @Option(help: "Also write FZOO's Rademacher probes 0 ..< N of each step (±1).")
    var rademacher = 0
    @Option(name: .customLong("lowrank-directions"), help: "Also write the factors of q low-rank directions (lowrank-spsa) of each step.")
    var lowrankDirections = 0
    @Option(name: .customLong("lowrank-rank"), help: "The rank r of --lowrank-directions.")
    var rank = 1
    @Flag(help: "With --lowrank-directions: write SubZero's bases U, V and z0 instead of the lowrank-spsa factors.")
    var subzero = false
    @Option(help: "Output .safetensors file.")
    var out: String

    func run() throws {
        guard (runSeed == nil) != (seed == nil) else { throw ValidationError("give exactly one of --run-seed and --seed") }
        guard (model == nil) != (name == nil) else { throw ValidationError("give exactly one of --model and --name") }
        guard runSeed == nil || steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        // Every step's tensors are held until the file is written.
        guard runSeed == nil || steps <= 1_000_000 else { throw ValidationError("--steps must be at most 1000000 (got \(steps))") }
        guard rademacher >= 0 && rademacher <= KernelBackend.maxSumTerms else {
            throw ValidationError("--rademacher must be in 0...\(KernelBackend.maxSumTerms) (got \(rademacher))")
        }
        // q ≤ 65535 as lowrank-spsa's --directions (the record's 16-bit direction field).
        guard lowrankDirections >= 0 && lowrankDirections <= Int(UInt16.max) else {
            throw ValidationError("--lowrank-directions must be in 0...\(UInt16.max) (got \(lowrankDirections))")
        }
        guard rank >= 1 else { throw ValidationError("--lowrank-rank must be at least 1 (got \(rank))") }
        guard lowrankDirections == 0 || model != nil else { throw ValidationError("--lowrank-directions needs --model (the linear matrices)") }
        guard !subzero || lowrankDirections > 0 else { throw ValidationError("--subzero needs --lowrank-directions q (and --lowrank-rank r)") }
        let backend = KernelBackend.cpu()
        var targets: [(name: String, shape: [Int])] = []
        var probe: LowRankProbe?
        var subZero: SubZero?
        if let model {
            let lm = try ModelFile.open(model).load(on: backend)
            targets = TrainableSet.full(lm).entries.map { ($0.name, $0.tensor.shape) }
            if subzero {
                subZero = try SubZero(model: lm, set: TrainableSet.full(lm), options: SubZeroOptions(directions: lowrankDirections, rank: rank))
            } else if lowrankDirections > 0 {
                probe = try LowRankProbe(model: lm, set: TrainableSet.full(lm), directions: lowrankDirections, rank: rank, eps: 1e-3)
            }
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
                for k in 0..<rademacher {
                    // 0 + 1·u_k: the probe's signs exactly, from the kernel FZOO moves θ with.
                    let u = try backend.allocate(t.shape, dtype: .f32, tag: .scratch)
                    backend.streamSum(into: u, tensorId: TrainableSet.tensorId(t.name), direction: .rademacher,
                                      terms: [SumTerm(seed: s, stream: FZOO.stream(k), coef: 1)])
                    tensors.append((prefix + "rademacher\(k)/" + t.name, u))
                }
            }
            if let probe {
                for (i, e) in probe.directions.entries.enumerated() {
                    let (aT, bT) = try probe.directions.hostFactors(i, seed: s)
                    let qr = lowrankDirections * rank
                    tensors.append((prefix + "lowrank/\(e.name)/A", try backend.tensor(aT, shape: [qr, e.tensor.shape[0]], tag: .scratch)))
                    tensors.append((prefix + "lowrank/\(e.name)/B", try backend.tensor(bT, shape: [qr, e.tensor.shape[1]], tag: .scratch)))
                }
            }
            if let subZero {
                for (i, e) in subZero.probe.directions.entries.enumerated() {
                    let (u, v, z0) = try subZero.hostFactors(i, window: s, seed: s)
                    tensors.append((prefix + "subzero/\(e.name)/U", try backend.tensor(u, shape: [e.tensor.shape[0], rank], tag: .scratch)))
                    tensors.append((prefix + "subzero/\(e.name)/V", try backend.tensor(v, shape: [e.tensor.shape[1], rank], tag: .scratch)))
                    tensors.append((prefix + "subzero/\(e.name)/z0", try backend.tensor(z0, shape: [lowrankDirections * rank, rank], tag: .scratch)))
                }
            }
        }
        var meta = ["z_stream_version": String(zStreamVersion)]
        for (prefix, s) in seeds where !prefix.isEmpty { meta["seed_" + String(prefix.dropLast())] = String(s) }
        try AtomicFile.write(try HFExport.safetensors(tensors, backend: backend, metadata: meta), to: URL(fileURLWithPath: out))
        print("wrote \(tensors.count) tensors to \(out)")
    }
}
