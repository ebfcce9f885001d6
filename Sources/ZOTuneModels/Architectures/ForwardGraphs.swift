import Foundation
import ZOTuneBackend

/// CUDA graphs of the forwards every ZO loss runs, `CausalLM.tokenLogProbs` (LM losses, multi-token
/// candidates) and `lastTokenLogProbs` (single-token label words), one per shape (docs/cuda.md,
/// "Graph capture"). A small model's forward is launch-bound (SmolLM2-135M: ~700 launches,
/// ≈ 2–3 ms of host enqueue per ≈ 4–6 ms of GPU work); a replay enqueues it in one call.
///
/// The key is what changes the launch sequence or an address: batch and length (every buffer's
/// size), the head (the token log-probs' row chunk, or the number of candidates), and the RoPE
/// table chosen on the host from the positions (LongRoPE). The rest is fixed per model: dtype,
/// precision, the plan (windows, norms, groups), the scratch buffers, and the weights' addresses
/// (`ModelWeights` never reallocates: a load makes a new model and cache; `reloadWeights` and a
/// merge write in place). The one buffer the forward keeps that can move, the mixed-precision
/// workspace, drops every graph when it is reallocated (`CausalLM.workspace`).
/// What the key cannot see runs eagerly: a forward hook (adapters, prefixes, probes), a KV cache
/// (generation; the scoring forwards have none), token log-probs through a head streamed in
/// panels (f16/bf16 under precision f32: its log-sum-exp ends on the host), and shapes too large
/// to be launch-bound (`isLaunchBound`). At most `maxShapes` shapes are kept (each pins the blocks
/// of one forward's activations); later shapes run eagerly.
///
/// ZO perturbs θ in place, at the addresses a graph recorded: a replay reads the weights as they
/// are when it runs (perturbed, restored or updated), exactly as the eager forward would.
///
/// Safety on a device it has not run on: a shape is recorded after one eager run into the buffers
/// the graph will read (the library's set-up rule), and its first replay must give that eager run's
/// log-probs bit for bit. A difference, or any error recording or launching, turns graphs off for
/// the process (GraphSwitch, one line on stderr) and the eager result is used.
final class ForwardGraphs: @unchecked Sendable {
    enum Head: Hashable {
        /// tokenLogProbs: log p(target) at every position (n targets), logits `chunk` rows at a time.
        case tokens(chunk: Int)
        /// lastTokenLogProbs: log p of C candidates after each row's last position (C·B targets).
        case lastCandidates(Int)
    }

    struct Key: Hashable {
        let batch: Int, length: Int, head: Head
        let rope: Tensor.StorageKey?, ropeScale: UInt32
    }

    final class Entry {
        var graph: DeviceGraph?
        /// ids ‖ positions (i32, n each) ‖ targets (i32) ‖ key mask (u8, B·T): one upload per replay.
        let inputs: Tensor
        /// The log-probs (one per target) the graph writes.
        let out: Tensor
        init(graph: DeviceGraph, inputs: Tensor, out: Tensor) { (self.graph, self.inputs, self.out) = (graph, inputs, out) }
        // The graph goes first (its destroy waits for the stream): the buffers it reads and writes outlive it.
        deinit { graph = nil }
    }

    static let maxShapes = 8
    private var entries: [Key: Entry] = [:]

    /// Shapes recorded (tests).
    var count: Int { entries.count }

    func removeAll() { entries.removeAll() }

    /// Whether a forward of `tokens` tokens is launch-bound, so that a graph pays: the GPU time
    /// per launch, estimated as GEMM work at 200 TFLOP/s (what small bf16 GEMMs reach on an H100)
    /// plus one read of the weights at 3 TB/s, over ≈ 25 launches a layer, is at most 5 µs, about
    /// what the host takes to enqueue one launch. Above it the queue runs ahead of the GPU and a
    /// graph saves little while pinning an activation set. SmolLM2-135M at 16 × 128 tokens: ≈ 4 µs
    /// (recorded); Llama-1B at 64 tokens ≈ 4 µs, at 256 ≈ 10 µs; a 7B even at 16 tokens ≈ 7 µs
    /// (its weight read alone). Only the time depends on it, never the result.
    static func isLaunchBound(parameters: Int, weightBytes: Int, layers: Int, tokens: Int) -> Bool {
        let gpu = 2 * Double(parameters) * Double(tokens) / 2e14 + Double(weightBytes) / 3e12
        return gpu / Double(25 * max(layers, 1)) <= 5e-6
    }

    /// The log-probs `head` gives for `targets` after a forward of `batch`, from a replay of its
    /// shape's graph, recorded on the shape's first call; nil: run it eagerly (graphs off or
    /// unsupported, a hook, or too large). The caller leaves out a streamed head.
    func logProbs(_ model: CausalLM, _ batch: TokenBatch, targets: [Int32], head: Head) throws -> [Float]? {
        guard let be = model.backend as? KernelBackend, be.recordsGraphs, model.hook == nil else { return nil }
        try model.checkIds(batch)
        let pos = model.positions(batch, cache: nil)
        try model.checkPositions(pos)
        let rope = model.ropeTables(positions: pos)
        let key = Key(batch: batch.batch, length: batch.length, head: head, rope: rope?.invFreq.storageKey,
                      ropeScale: rope?.scale.bitPattern ?? 0)
        let n = batch.tokenCount, t = targets.count
        var words = [Int32](repeating: 0, count: 2 * n + t + (batch.mask.count + 3) / 4)
        words.withUnsafeMutableBufferPointer { w in
            for i in 0..<n { (w[i], w[n + i]) = (batch.ids[i], pos[i]) }
            for i in 0..<t { w[2 * n + i] = targets[i] }
            UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(w)[(4 * (2 * n + t))...]).copyBytes(from: batch.mask)
        }
        let shape = "\(batch.batch) × \(batch.length)"

        if let e = entries[key], let graph = e.graph {
            words.withUnsafeBytes { be.copy(e.inputs, fromHost: $0) }
            do {
                try be.launch(graph)
            } catch {
                GraphSwitch.disable("replaying the \(shape) forward failed (\(error))")
                removeAll()
                return nil
            }
            return try be.read(e.out)
        }
        let layers = model.plan.layers.count
        guard entries.count < Self.maxShapes,
              Self.isLaunchBound(parameters: model.weights.parameterCount, weightBytes: model.weights.bytes, layers: layers, tokens: n)
        else { return nil }

        // Buffers made before recording, kept by the entry: the graph reads and writes these addresses.
        let inputs = try be.allocate([words.count], dtype: .i32, tag: .scratch, zeroed: false)
        words.withUnsafeBytes { be.copy(inputs, fromHost: $0) }
        let views = (ids: Tensor(buffer: inputs.buffer, dtype: .i32, shape: [n]),
                     positions: Tensor(buffer: inputs.buffer, dtype: .i32, shape: [n], offset: n),
                     mask: Optional(Tensor(buffer: inputs.buffer, dtype: .u8, shape: [batch.batch, batch.length], offset: 4 * (2 * n + t))))
        let targetT = Tensor(buffer: inputs.buffer, dtype: .i32, shape: [t], offset: 2 * n)
        let out = try be.allocate([t], tag: .scratch, zeroed: false)
        // Unowned: an emulated graph keeps this closure, and the model keeps the graph.
        let body: () throws -> Void = { [unowned model] in
            let hidden = try model.hiddenStates(batch, cache: nil, inputEmbeddings: nil, uploaded: views)
            switch head {
            case .tokens(let chunk): try model.headLogProbs(hidden, targets: targetT, chunk: chunk, into: out)
            case .lastCandidates: try model.candidateLogProbs(hidden, batch: batch, targets: targetT, into: out)
            }
        }
        // The eager set-up run (cuBLAS's workspace, scratch, attention's opt-in made before
        // recording), whose result the first replay must reproduce.
        try body()
        let eager = try be.read(out)
        let graph: DeviceGraph
        do {
            guard let g = try be.recordGraph(body) else { return eager }
            try be.launch(g)
            graph = g
        } catch {
            GraphSwitch.disable("recording the \(shape) forward failed (\(error))")
            removeAll()
            return eager
        }
        let replayed: [Float]
        do {
            replayed = try be.read(out)
        } catch {
            GraphSwitch.disable("the first replay of the \(shape) forward failed")
            removeAll()
            throw error  // the device failed: no later result can be trusted either
        }
        let differing = zip(eager, replayed).reduce(0) { $0 + ($1.0.bitPattern == $1.1.bitPattern ? 0 : 1) }
        guard differing == 0 else {
            GraphSwitch.disable("the first replay of the \(shape) forward differed from the eager forward in \(differing) of \(t) log-probs")
            removeAll()
            return eager
        }
        entries[key] = Entry(graph: graph, inputs: inputs, out: out)
        return eager
    }
}
