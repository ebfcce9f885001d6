import Foundation
import ZOTuneBackend

/// A decoder-only language model on one backend: weights, and forwards that return hidden states,
/// logits, or the log-probs of given target tokens. The forward is the same for every family: it
/// runs the `DecoderPlan` its `ArchitectureFamily` builds (Architectures/Family.swift).
///
/// Activations are f32. Weights are f32, or f16/bf16 storage that the GEMMs take as it is stored
/// (`GemmPrecision.mixed`: tensor-core operands on CUDA) or convert one matrix at a time into an
/// f32 scratch buffer (`.f32`). All activation buffers of a forward are allocated once per call
/// under the `activations` tag and freed when it returns, so the ledger's peak is the forward's
/// working set.
public final class CausalLM: @unchecked Sendable {
    public let config: ModelConfig
    public let backend: any Backend
    public let weights: ModelWeights
    /// The layers as the forward runs them, with each tensor's role and checkpoint name.
    public let plan: DecoderPlan
    /// The plan's embedding factor (Gemma's √hidden) cast to the weights' dtype, as transformers
    /// casts it (`normalizer`/`embed_scale` in the hidden dtype): a bf16 model multiplies by
    /// bf16(√640) = 25.25, not 25.298. f32 (and GGUF, which transformers and llama.cpp dequantize
    /// to f32) keeps the f32 value.
    public let embeddingScale: Float?
    let linearsByWeight: [String: LinearLayer]
    let invFreq: Tensor?
    /// LongRoPE's long-context frequencies (used by a forward whose positions pass the original context).
    let invFreqLong: Tensor?
    /// The sliding layers' frequencies when their base differs (Gemma 3's local RoPE base).
    let invFreqLocal: Tensor?
    /// 1 + w of each unit-offset norm (Gemma), recomputed from w before each use; `ones` to add.
    let unitGains: [String: Tensor]
    let ones: Tensor?
    /// First q weight of each layer → the weights one GEMM multiplies together (`gemmGroups`).
    let groupMembers: [String: [String]]
    let scratch: Tensor?   // f32 copy of one low-precision weight matrix (precision f32)
    let halfScratch: Tensor?   // bf16 copy of one GGUF-block matrix (mixed precision)
    /// How GEMMs treat low-precision weights (and f32 ones, for `.tf32`).
    public let precision: GemmPrecision
    /// Rounded activations of a mixed-precision GEMM; grows to the largest product seen.
    private var mixedWorkspace: Tensor?
    /// Where the weights came from (to reload them in place).
    public let reader: CheckpointReader
    /// Called at the start of each forward and after each linear layer (ForwardHook).
    public var hook: (any ForwardHook)?
    /// Per-shape CUDA graphs of `tokenLogProbs`'s forward (ForwardGraphs.swift).
    let forwardGraphs = ForwardGraphs()
    /// Mixed precision: each GEMM's activation rounded by the kernel that makes it (the *_half
    /// producers). false: by a convert or inside gemm_mixed instead, the same bits (the tests'
    /// reference path).
    var roundInProducers = true

    /// `keepBlocks`: matrices a GGUF file stores quantized stay in their block format and are
    /// dequantized one at a time before their GEMM (a frozen base; adapters train over it).
    /// `precision`: see GemmPrecision (`.tf32` switches the backend's f32 GEMMs to TF32).
    public init(config: ModelConfig, reader: CheckpointReader, backend: any Backend, dtype: DType = .f32, keepBlocks: Bool = false,
                precision: GemmPrecision = .f32) throws {
        guard dtype.isFloat else { throw ModelError(file: reader.path, field: "dtype", "weights must be f32, f16 or bf16") }
        try backend.setTF32(precision == .tf32)
        self.config = config
        self.precision = precision
        self.backend = backend
        self.reader = reader
        let (specs, tied) = CausalLM.tensorSpecs(config)
        let weights = try ModelWeights.load(specs, tied: tied, groups: CausalLM.gemmGroups(config), from: reader, backend: backend,
                                            dtype: dtype, keepBlocks: keepBlocks)
        self.weights = weights
        plan = config.architecture.family.plan(config, has: { weights.optional($0) != nil })
        embeddingScale = plan.embeddingScale.map { dtype.rounded($0) }
        linearsByWeight = Dictionary(plan.linears.map { ($0.weight, $0) }, uniquingKeysWith: { a, _ in a })
        if !config.architecture.family.hasLearnedPositions {
            let inv = RotaryEmbedding.inverseFrequencies(dim: config.rotaryDim, theta: config.ropeTheta, scaling: config.ropeScaling)
            invFreq = try backend.tensor(inv, shape: [inv.count], tag: .weights)
        } else {
            invFreq = nil
        }
        if let local = config.localRopeTheta {
            let inv = RotaryEmbedding.inverseFrequencies(dim: config.rotaryDim, theta: local, scaling: config.ropeScaling)
            invFreqLocal = try backend.tensor(inv, shape: [inv.count], tag: .weights)
        } else {
            invFreqLocal = nil
        }
        let offsetNorms = plan.layers.flatMap(\.norms).filter(\.unitOffset) + [plan.finalNorm].compactMap { $0 }.filter(\.unitOffset)
        unitGains = try Dictionary(offsetNorms.map { ($0.weight, try backend.allocate(weights[$0.weight].shape, tag: .scratch)) },
                                   uniquingKeysWith: { a, _ in a })
        let widest = offsetNorms.map { weights[$0.weight].count }.max()
        ones = try widest.map { try backend.tensor([Float](repeating: 1, count: $0), shape: [$0], tag: .scratch) }
        if case .longrope = config.ropeScaling {
            let inv = RotaryEmbedding.inverseFrequencies(dim: config.rotaryDim, theta: config.ropeTheta, scaling: config.ropeScaling, long: true)
            invFreqLong = try backend.tensor(inv, shape: [inv.count], tag: .weights)
        } else {
            invFreqLong = nil
        }
        let groups = CausalLM.gemmGroups(config).filter { $0.allSatisfy { weights.optional($0) != nil } }
        groupMembers = Dictionary(groups.map { ($0[0], $0) }, uniquingKeysWith: { a, _ in a })
        let gathered = Set([plan.embed, plan.positions].compactMap { $0 })
        scratch = try CausalLM.scratchElements(weights, gathered: gathered, head: plan.head.weight, mixed: precision != .f32, groups: groups)
            .map { try backend.allocate([$0], tag: .scratch) }
        halfScratch = precision == .f32 ? nil
            : try CausalLM.blockMatrixElements(weights, gathered: gathered, groups: groups)
                .map { try backend.allocate([$0], dtype: .bf16, tag: .scratch, zeroed: false) }
    }

    /// Elements of the f32 scratch: the largest matrix stored in f16/bf16/blocks, converted whole
    /// before its GEMM; but the head goes through in panels of rows (its f32 copy would be the
    /// largest buffer of a low-precision base: 108 MiB on SmolLM2), so it only needs a panel of
    /// at least 2²⁰ elements. nil: every matrix is f32.
    /// `mixed`: f16/bf16 matrices go to the GEMM as stored and GGUF blocks through the bf16 scratch:
    /// no f32 scratch.
    /// `gathered`: the embedding tables, only gathered row by row (a tied head is counted as the head).
    /// A GEMM group (q/k/v) with a low-precision member is converted whole: it counts as one matrix.
    static func scratchElements(_ weights: ModelWeights, gathered: Set<String>, head: String, mixed: Bool = false,
                                groups: [[String]] = []) -> Int? {
        if mixed { return nil }
        var largest = 0
        for name in weights.names where weights[name].rank == 2 && weights[name].dtype != .f32 && !gathered.contains(name) {
            let w = weights[name]
            largest = max(largest, name == head ? min(w.count, 1 << 20) : w.count)
        }
        for g in groups where g.contains(where: { weights[$0].dtype != .f32 }) {
            largest = max(largest, g.reduce(0) { $0 + weights[$1].count })
        }
        return largest > 0 ? largest : nil
    }

    /// Elements of the bf16 scratch of mixed precision: the largest GGUF-block matrix, whole (the
    /// head too: 57 MB in bf16 on SmolLM2); nil when no matrix is stored in blocks.
    static func blockMatrixElements(_ weights: ModelWeights, gathered: Set<String>, groups: [[String]] = []) -> Int? {
        let sizes = weights.names.filter { weights[$0].rank == 2 && weights[$0].dtype.ggmlType != nil && !gathered.contains($0) }
            .map { weights[$0].count }
        let grouped = groups.filter { $0.allSatisfy { weights[$0].dtype.ggmlType != nil } }.map { $0.reduce(0) { $0 + weights[$1].count } }
        return (sizes + grouped).max()
    }

    /// Reads every weight again from the checkpoint into the existing buffers (no extra memory):
    /// how a run returns to the base model before replaying part of a trajectory.
    public func reloadWeights() throws {
        var seen = Set<Tensor.StorageKey>()
        for name in weights.names {
            let t = weights[name]
            guard seen.insert(t.storageKey).inserted else { continue }
            guard let stored = weights.storedNames[name] else { continue }
            try ModelWeights.fill(t, from: reader, name: stored)
        }
    }

    // MARK: tensor names and shapes

    /// The tensors a checkpoint of `config` stores, in load order, with their shapes (a tied head
    /// is left out, as transformers saves it).
    public static func storedTensorShapes(_ config: ModelConfig) -> [(name: String, shape: [Int])] {
        let (specs, tied) = tensorSpecs(config)
        return specs.filter { tied[$0.name] == nil }.map { ($0.name, $0.shape) }
    }

    /// The tensors an architecture reads, with their expected shapes (and the names older
    /// checkpoints use), and which may be tied: the family's tensors under its checkpoint names.
    static func tensorSpecs(_ c: ModelConfig) -> ([ModelWeights.Spec], [String: String]) {
        let family = c.architecture.family, names = family.names
        let specs = family.tensors(c).map { t -> ModelWeights.Spec in
            let name = names.name(t.role, layer: t.layer, t.part)
            return ModelWeights.Spec(name: name, shape: t.shape, aliases: names.aliases(name))
        }
        let tied = c.tieWordEmbeddings ? [names.name(.head): names.name(.embed)] : [:]
        return (specs, tied)
    }

    /// Weights one GEMM multiplies together, stored side by side: each layer's separate q, k and v
    /// (they read the same input). One GEMM reads the input once and runs at the efficiency of its
    /// wider output: SmolLM2's q/k/v at 1,024 rows took 20.9 ms as three OpenBLAS GEMMs (the
    /// 192-wide k and v run far below peak) and 14.8 ms as one 960-wide GEMM. gate and up are
    /// left apart: already 1,536 wide, one GEMM gained 4% (50.8 → 48.5 ms), not worth a
    /// dequantization scratch twice the largest matrix for a block-stored base.
    static func gemmGroups(_ c: ModelConfig) -> [[String]] {
        let names = c.architecture.family.names
        guard [Role.q, .k, .v].allSatisfy({ names.has($0, perLayer: true) }) else { return [] }
        return (0..<c.numLayers).map { l in [Role.q, .k, .v].map { names.name($0, layer: l) } }
    }

    /// Width of the final hidden states: the head's input (OPT-350m projects out to the embedding width).
    public var outputWidth: Int { weights[plan.head.weight].shape[1] }

    // MARK: building blocks

    /// out = x·Wᵀ + b for a weight stored (out, in), or x·W + b for one stored (in, out) (GPT-2's Conv1D).
    /// `converted`: the weight already in f32 (a head used chunk after chunk). `rounded`: x already
    /// rounded to the weight's 16-bit dtype (`roundedOnce`), taken as stored by a mixed GEMM.
    func linear(_ out: Tensor, _ x: Tensor, _ layer: LinearLayer, converted: Tensor? = nil, rounded: Tensor? = nil) throws {
        let name = layer.weight, inOut = layer.layout == .inOut
        let w = weights[name]
        if let op = converted ?? mixedOperand(name), op.dtype != .f32 {
            let k = x.shape[x.rank - 1], m = x.count / max(k, 1)
            let ws = try workspace(bytes: backend.mixedWorkspaceBytes(m: m, n: out.shape[out.rank - 1], k: k))
            if let r = rounded, r.dtype == op.dtype {
                backend.matmulHalf(out, r, weight: op, transposeB: !inOut, workspace: ws)
            } else {
                backend.matmulMixed(out, x, weight: op, transposeB: !inOut, workspace: ws)
            }
        } else if converted == nil, let scratch, w.dtype != .f32, w.count > scratch.count {
            precondition(!inOut, "\(name): only the (out, in) head goes in panels")
            try panelLinear(out, x, weights[name], scratch: scratch)
        } else {
            backend.matmul(out, x, transposeA: false, converted ?? f32Weight(name), transposeB: !inOut, alpha: 1, beta: 0)
        }
        if let bias = layer.bias, let b = weights.optional(bias) { backend.addRows(out, bias: b) }
        hook?.linearDone(layer, input: x, output: out)
    }

    /// The stored-together weights that start with `layer`'s, when one GEMM can take them as
    /// stored: f32, or 16-bit as a mixed-precision operand (a group wider than the f32 scratch, or
    /// in GGML blocks, goes layer by layer).
    func gemmGroup(_ layer: LinearLayer) -> Tensor? {
        guard let members = groupMembers[layer.weight] else { return nil }
        if let g = weights.groups[layer.weight], g.dtype == .f32 || (precision != .f32 && (g.dtype == .bf16 || g.dtype == .f16)) { return g }
        // Otherwise each member converted (f16/bf16 under precision f32) or decoded (GGML blocks)
        // into consecutive rows of the scratch: the same operand values as the f32 load's group,
        // so a quantized base gives the dequantized base's forward bit for bit.
        let ws = members.map { weights[$0] }, total = ws.reduce(0) { $0 + $1.count }, cols = ws[0].shape[1]
        let target: Tensor
        if precision == .f32 {
            guard let scratch, scratch.count >= total else { return nil }
            target = scratch
        } else {
            guard ws.allSatisfy({ $0.dtype.ggmlType != nil }), let half = halfScratch, half.count >= total else { return nil }
            target = half
        }
        var at = 0
        for w in ws {
            backend.convert(into: target.flatSlice(at, w.count).reshaped(w.shape), from: w)
            at += w.count
        }
        return target.flatSlice(0, total).reshaped([total / cols, cols])
    }

    /// The layers `parts` (in the group's row order) as one GEMM into `wide` (n, Σ out), whose
    /// columns are then split into each part's output; each part then gets its bias and its hook
    /// call, as if it had run alone.
    /// `rounded`: x already rounded to the group's 16-bit dtype (by its norm), as `linear`'s.
    func groupedLinear(_ x: Tensor, _ group: Tensor, into wide: Tensor, parts: [(LinearLayer, Tensor)], rounded: Tensor? = nil) throws {
        let n = x.shape[0], width = group.shape[0]
        let all = wide.flatSlice(0, n * width).reshaped([n, width])
        if group.dtype != .f32 {
            let k = x.shape[x.rank - 1]
            let ws = try workspace(bytes: backend.mixedWorkspaceBytes(m: n, n: width, k: k))
            if let r = rounded, r.dtype == group.dtype {
                backend.matmulHalf(all, r, weight: group, transposeB: true, workspace: ws)
            } else {
                backend.matmulMixed(all, x, weight: group, transposeB: true, workspace: ws)
            }
        } else {
            backend.matmul(all, x, transposeA: false, group, transposeB: true, alpha: 1, beta: 0)
        }
        var col = 0
        for (layer, out) in parts {
            let w = out.shape[out.rank - 1]
            backend.copy2D(out, ldd: w, from: all.flatSlice(col, all.count - col), lds: width, rows: n, cols: w)
            col += w
            if let bias = layer.bias, let b = weights.optional(bias) { backend.addRows(out, bias: b) }
            hook?.linearDone(layer, input: x, output: out)
        }
    }

    /// out = x·Wᵀ for a low-precision W (out, in) larger than the scratch (the head): a panel of W's
    /// rows at a time is converted, multiplied into a (rows × panel) buffer and copied into its columns.
    func panelLinear(_ out: Tensor, _ x: Tensor, _ w: Tensor, scratch: Tensor) throws {
        let (outDim, inDim) = (w.shape[0], w.shape[1]), rows = x.count / inDim
        let panel = scratch.count / inDim
        let tmp = try backend.allocate([rows * min(panel, outDim)], tag: .activations)
        for p0 in stride(from: 0, to: outDim, by: panel) {
            let pr = min(panel, outDim - p0)
            let f = scratch.flatSlice(0, pr * inDim).reshaped([pr, inDim])
            backend.convert(into: f, from: w.rows(p0, pr))
            let t = tmp.flatSlice(0, rows * pr).reshaped([rows, pr])
            backend.matmul(t, x.reshaped([rows, inDim]), transposeA: false, f, transposeB: true, alpha: 1, beta: 0)
            backend.copy2D(out.flatSlice(p0, out.count - p0), ldd: outDim, from: t, lds: pr, rows: rows, cols: pr)
        }
    }

    /// The mixed-precision workspace, at least `bytes` long (allocated again only when it grows).
    private func workspace(bytes: Int) throws -> Tensor {
        if let w = mixedWorkspace, w.bytes >= bytes { return w }
        // A recorded graph may write the old one, which now goes back to the allocator.
        forwardGraphs.removeAll()
        mixedWorkspace = nil
        let w = try backend.allocate([bytes], dtype: .u8, tag: .scratch, zeroed: false)
        mixedWorkspace = w
        return w
    }

    /// In mixed precision, weight `name` as a 16-bit tensor-core operand: itself (bf16/f16), or its
    /// GGUF blocks decoded into the bf16 scratch (each value rounded once, as `--dtype bf16` would
    /// store it); nil for f32 weights or under precision f32.
    func mixedOperand(_ name: String) -> Tensor? {
        guard precision != .f32 else { return nil }
        let w = weights[name]
        if w.dtype == .bf16 || w.dtype == .f16 { return w }
        guard w.dtype.ggmlType != nil, w.rank == 2, let half = halfScratch else { return nil }
        let f = half.flatSlice(0, w.count).reshaped(w.shape)
        backend.convert(into: f, from: w)
        return f
    }

    /// Weight `name` in f32: itself, or converted (f16/bf16) or dequantized (blocks) into the scratch.
    func f32Weight(_ name: String) -> Tensor {
        let w = weights[name]
        guard w.dtype != .f32, let scratch else { return w }
        let f = scratch.flatSlice(0, w.count).reshaped(w.shape)
        backend.convert(into: f, from: w)
        return f
    }

    /// out = norm(x) over x's last dimension (rows of the gain's length). `half`: out also rounded
    /// to its 16-bit dtype by the same kernel (rmsnorm_half / layernorm_half: the bits convert gives).
    func norm(_ out: Tensor, _ x: Tensor, _ n: NormLayer, half: Tensor? = nil) {
        let w = weights[n.weight]
        var gamma = w
        if n.unitOffset, let g = unitGains[n.weight] {
            // Gemma: 1 + w in f32 (transformers' `1.0 + weight.float()`), from the current w, so
            // a perturbation of w reaches the gain.
            backend.add(g, w, ones!.flatSlice(0, w.count))
            gamma = g
        }
        let rows = x.count / w.count
        let (o2, x2) = (out.reshaped([rows, w.count]), x.reshaped([rows, w.count]))
        switch n.kind {
        case .layerNorm:
            if let half {
                backend.layerNormHalf(o2, half: half.reshaped([rows, w.count]), x2, gamma: gamma, beta: weights[n.bias!], eps: config.normEps)
            } else {
                backend.layerNorm(o2, x2, gamma: gamma, beta: weights[n.bias!], eps: config.normEps)
            }
        case .rmsNorm:
            if let half { backend.rmsNormHalf(o2, half: half.reshaped([rows, w.count]), x2, gamma: gamma, eps: config.normEps) }
            else { backend.rmsNorm(o2, x2, gamma: gamma, eps: config.normEps) }
        }
    }

    /// Position ids of each token: real tokens are counted (left padding does not shift a
    /// sequence) from the config's offset (OPT's 2); pads get the plan's pad position (OPT's 1).
    /// A prefix of P virtual positions (prefix and prompt tuning) moves real tokens to P, P+1, ….
    func positions(_ batch: TokenBatch, cache: KVCache?, start: Int = 0) -> [Int32] {
        var counts = cache?.realTokens ?? [Int32](repeating: Int32(start), count: batch.batch)
        var pos = [Int32](repeating: 0, count: batch.tokenCount)
        let offset = Int32(config.positionOffset)
        for b in 0..<batch.batch {
            for t in 0..<batch.length {
                let i = b * batch.length + t
                if batch.mask[i] != 0 {
                    pos[i] = counts[b] + offset
                    counts[b] += 1
                } else {
                    pos[i] = plan.padPosition
                }
            }
        }
        cache?.realTokens = counts
        return pos
    }

    // MARK: forward

    /// Final hidden states (B·T, outputWidth) after the final norm. With a cache, the batch's keys
    /// and values are appended and attention sees every cached position.
    public func hiddenStates(_ batch: TokenBatch, cache: KVCache? = nil) throws -> Tensor {
        try hiddenStates(batch, cache: cache, inputEmbeddings: nil)
    }

    /// `inputEmbeddings` (tokens, embedding width) replace the token embeddings of `batch` (its ids
    /// are then ignored): how prompt tuning's virtual tokens enter. `uploaded`: the ids, positions and
    /// mask already on the device (a recorded graph's input buffers; no cache).
    func hiddenStates(_ batch: TokenBatch, cache: KVCache?, inputEmbeddings: Tensor?,
                      uploaded: (ids: Tensor, positions: Tensor, mask: Tensor?)? = nil) throws -> Tensor {
        let c = config
        let (n, h) = (batch.tokenCount, c.hiddenSize)
        let be = backend
        try checkIds(batch)
        hook?.forwardBegins(batch)
        // Virtual positions in front of every sequence: asked once per sequence (a cache keeps them).
        let prefix = cache.map({ $0.length == 0 }) ?? true ? try hook?.attentionPrefix(self) : nil
        let prefixLength = prefix?.length ?? 0
        if let prefix, let cache { try cache.prefill(prefix, backend: be) }
        let pos = positions(batch, cache: cache, start: prefixLength)
        try checkPositions(pos)
        let inputs = try uploaded ?? upload(batch, positions: pos, mask: cache == nil)
        let (ids, posT) = (inputs.ids, inputs.positions)
        let keyLength = try cache?.append(batch, backend: be) ?? batch.length
        let mask = cache?.mask ?? inputs.mask!

        // Every buffer below is written in full before it is read: no zero fill.
        func buffer(_ shape: [Int]) throws -> Tensor { try be.allocate(shape, tag: .activations, zeroed: false) }
        let x = try buffer([n, h])
        let normed = try buffer([n, h])
        let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        let q = try buffer([n, qd])
        let k = try buffer([n, kvd])
        let v = try buffer([n, kvd])
        let attn = try buffer([n, qd])
        let proj = try buffer([n, h])
        let up = try buffer([n, c.intermediateSize])
        let gate = plan.layers.contains(where: \.isGated) ? try buffer([n, c.intermediateSize]) : nil
        // The wide outputs of fused and grouped GEMMs, split into q/k/v and gate/up.
        let groupedQKV = plan.layers.contains { if case .separate(let ql, _, _) = $0.projections { return gemmGroup(ql) != nil } else { return false } }
        let qkv = plan.layers.contains(where: \.isFused) || groupedQKV ? try buffer([n, qd + 2 * kvd]) : nil
        let gateUp = plan.layers.contains(where: { if case .fusedGated = $0.mlp { return true } else { return false } })
            ? try buffer([n, 2 * c.intermediateSize]) : nil
        let rope = ropeTables(positions: pos)
        let localRope = invFreqLocal.map { (invFreq: $0, scale: Float(1)) }
        // Without a cache, a prefix needs each layer's keys and values behind it: (B, P + T) rows.
        var prefixed: (keys: Tensor, values: Tensor, mask: Tensor)?
        if prefix != nil && cache == nil {
            let span = prefixLength + batch.length
            var m = [UInt8](repeating: 1, count: batch.batch * span)
            for b in 0..<batch.batch {
                for t in 0..<batch.length { m[b * span + prefixLength + t] = batch.mask[b * batch.length + t] }
            }
            prefixed = (try buffer([batch.batch, span, c.numKVHeads, c.headDim]),
                        try buffer([batch.batch, span, c.numKVHeads, c.headDim]),
                        try be.tensor(m, shape: [batch.batch, span], tag: .activations))
        }

        try embed(x, ids: ids, positions: posT, override: inputEmbeddings)

        let mlpOut = plan.layers.contains(where: \.parallelResidual) ? try buffer([n, h]) : nil
        for (l, layer) in plan.layers.enumerated() {
            // A pre-LN sublayer reads the norm of the residual stream (or the stream itself when it
            // has no input norm: OLMo 2); a post-LN one reads the stream and normalises it after
            // adding its output. An output norm (Gemma 2/3, OLMo 2) acts before the residual add.
            let pre = layer.normPlacement == .pre
            // Under mixed precision the norm also writes the 16-bit copy its GEMMs `readers` take as
            // stored (rmsnorm_half / layernorm_half): rounded once, where it is made. A stream read
            // without a norm (post-LN, OLMo 2) is rounded inside its GEMMs as before.
            func sublayerInput(_ n: NormLayer?, roundedFor readers: [LinearLayer]) throws -> (Tensor, Tensor?) {
                guard pre, let n else { return (x, nil) }
                guard let dt = producerHalf(readers) else {
                    norm(normed, x, n)
                    return (normed, nil)
                }
                let r = try be.allocate(normed.shape, dtype: dt, tag: .activations, zeroed: false)
                norm(normed, x, n, half: r)
                return (normed, r)
            }
            // ---- attention ----
            let (aIn, a16) = try sublayerInput(layer.attentionNorm, roundedFor: layer.projections.layers)
            try projectQKV(layer, aIn, q: q, k: k, v: v, fused: qkv, positions: posT,
                           rope: layer.localRope ? localRope ?? rope : rope, rounded: a16)
            // attention's output rounded for o_proj by the attention kernel itself (attention_half).
            let o16 = try producerHalf([layer.output]).map { try be.allocate(attn.shape, dtype: $0, tag: .activations, zeroed: false) }
            try attend(attn, q: q, k: k, v: v, layer: l, batch: batch, cache: cache, keyLength: keyLength, mask: mask,
                       prefix: prefix, prefixed: prefixed, half: o16)
            try linear(proj, attn, layer.output, rounded: o16)
            if let n = layer.postAttentionNorm { norm(proj, proj, n) }
            if layer.parallelResidual, let mlpOut {
                // GPT-NeoX: both sublayers read the same stream; x + (mlp + attn) as transformers sums it.
                let (mIn, m16) = try sublayerInput(layer.mlpNorm, roundedFor: layer.mlp.inputLayers)
                try mlp(layer, mIn, gate: gate, up: up, fused: gateUp, out: mlpOut, rounded: m16)
                be.add(mlpOut, mlpOut, proj)
                be.add(x, mlpOut, x)
                continue
            }
            be.add(x, x, proj)
            if !pre, let n = layer.attentionNorm { norm(x, x, n) }

            // ---- MLP ----
            let (mIn, m16) = try sublayerInput(layer.mlpNorm, roundedFor: layer.mlp.inputLayers)
            try mlp(layer, mIn, gate: gate, up: up, fused: gateUp, out: proj, rounded: m16)
            if let n = layer.postMLPNorm { norm(proj, proj, n) }
            be.add(x, x, proj)
            if !pre, let n = layer.mlpNorm { norm(x, x, n) }
        }

        // ---- final norm (and OPT-350m's projection out) ----
        if let f = plan.finalNorm { norm(x, x, f) }
        if let projectOut = plan.projectOut {
            let out = try buffer([n, outputWidth])
            try linear(out, x, projectOut)
            return out
        }
        return x
    }

    /// The host's checks of a forward's input (the device trusts them): ids inside the vocabulary,
    /// positions inside a learned position table.
    func checkIds(_ batch: TokenBatch) throws {
        if let bad = batch.ids.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw ModelError(file: "input", field: "token ids", "id \(bad) is outside the vocabulary (\(config.vocabSize))")
        }
    }

    func checkPositions(_ pos: [Int32]) throws {
        let c = config
        if let maxPos = pos.max(), c.architecture.family.hasLearnedPositions, Int(maxPos) >= c.maxPositions + c.positionOffset {
            throw ModelError(file: "input", field: "positions", "\(maxPos - Int32(c.positionOffset) + 1) positions exceed the model's \(c.maxPositions)")
        }
    }

    /// q, k, v (n, heads·headDim) of a layer's input: three GEMMs or one fused GEMM split into
    /// them (`fused` is its (n, q + 2·kv) output buffer), then RoPE where the layer has it.
    /// The inverse frequencies and cos/sin factor of a forward over `positions`: LongRoPE takes
    /// its long factors when a position reaches past the original context (transformers decides
    /// on max(position) + 1 for the whole forward, cached steps included).
    func ropeTables(positions: [Int32]) -> (invFreq: Tensor, scale: Float)? {
        guard let invFreq else { return nil }
        guard case .longrope(_, _, let orig, let attention) = config.ropeScaling, let long = invFreqLong else { return (invFreq, 1) }
        return (Int(positions.max() ?? 0) + 1 > orig ? long : invFreq, attention)
    }

    func projectQKV(_ layer: DecoderLayer, _ input: Tensor, q: Tensor, k: Tensor, v: Tensor, fused: Tensor?, positions: Tensor,
                    rope: (invFreq: Tensor, scale: Float)?, rounded: Tensor? = nil) throws {
        let c = config, be = backend, n = input.shape[0]
        let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        switch layer.projections {
        case .separate(let ql, let kl, let vl):
            if let group = gemmGroup(ql), let qkv = fused {
                try groupedLinear(input, group, into: qkv, parts: [(ql, q), (kl, k), (vl, v)], rounded: rounded)
            } else {
                try linear(q, input, ql, rounded: rounded)
                try linear(k, input, kl, rounded: rounded)
                try linear(v, input, vl, rounded: rounded)
            }
        case .fused(let fl, let interleaved):
            let w = qd + 2 * kvd, qkv = fused!
            try linear(qkv, input, fl, rounded: rounded)
            if interleaved {
                // GPT-NeoX: each head's q, k, v are side by side: rows of 3·head_dim per (token, head).
                let d = c.headDim, rows = n * c.numHeads
                be.copy2D(q, ldd: d, from: qkv, lds: 3 * d, rows: rows, cols: d)
                be.copy2D(k, ldd: d, from: qkv.flatSlice(d, n * w - d), lds: 3 * d, rows: rows, cols: d)
                be.copy2D(v, ldd: d, from: qkv.flatSlice(2 * d, n * w - 2 * d), lds: 3 * d, rows: rows, cols: d)
            } else {
                be.copy2D(q, ldd: qd, from: qkv, lds: w, rows: n, cols: qd)
                be.copy2D(k, ldd: kvd, from: qkv.flatSlice(qd, n * w - qd), lds: w, rows: n, cols: kvd)
                be.copy2D(v, ldd: kvd, from: qkv.flatSlice(qd + kvd, n * w - qd - kvd), lds: w, rows: n, cols: kvd)
            }
        }
        // q/k RMSNorm before RoPE, over each head's dims (Qwen3, Gemma 3: a head_dim gain) or the
        // whole projection (OLMo 2): `norm` takes rows of its gain's length.
        if let qn = layer.qNorm { norm(q, q, qn) }
        if let kn = layer.kNorm { norm(k, k, kn) }
        if layer.rotary, let rope {
            be.rope(q, positions: positions, headDim: c.headDim, rotaryDim: c.rotaryDim, invFreq: rope.invFreq, scale: rope.scale)
            be.rope(k, positions: positions, headDim: c.headDim, rotaryDim: c.rotaryDim, invFreq: rope.invFreq, scale: rope.scale)
        }
    }

    /// out (n, heads·headDim) = attention of layer `l`'s queries over its keys and values: this
    /// batch's alone (causal, masked), behind a prefix's (`prefixed` holds each row's P + T), or
    /// appended to the cache at positions [keyLength − T, keyLength) and attending to all of it.
    func attend(_ out: Tensor, q: Tensor, k: Tensor, v: Tensor, layer l: Int, batch: TokenBatch, cache: KVCache?, keyLength: Int,
                mask: Tensor, prefix: AttentionPrefix?, prefixed: (keys: Tensor, values: Tensor, mask: Tensor)?,
                half: Tensor? = nil) throws {
        let c = config, be = backend, kvd = c.numKVHeads * c.headDim
        let scale = plan.attentionScale ?? 1 / Float(c.headDim).squareRoot(), window = plan.layers[l].window
        let softcap = c.attentionSoftcap ?? 0
        let qv = q.reshaped([batch.batch, batch.length, c.numHeads, c.headDim])
        let attnOut = out.reshaped(qv.shape)
        // With `half` (o_proj's 16-bit input), the kernel also writes its output rounded (attention_half).
        func attention(k: Tensor, v: Tensor, keyLength: Int?, keyMask: Tensor, scale: Float, window: Int, softcap: Float) {
            if let half {
                be.attentionHalf(attnOut, half: half.reshaped(qv.shape), q: qv, k: k, v: v, keyLength: keyLength, keyMask: keyMask,
                                 scale: scale, window: window, softcap: softcap)
            } else {
                be.attention(attnOut, q: qv, k: k, v: v, keyLength: keyLength, keyMask: keyMask, scale: scale, window: window,
                             softcap: softcap)
            }
        }
        if let cache {
            // Append this batch's keys/values at positions [length − T, length) of every row.
            let row = kvd, start = keyLength - batch.length
            for b in 0..<batch.batch {
                let dst = (b * cache.capacity + start) * row
                be.copy2D(cache.keys[l].flatSlice(dst, batch.length * row), ldd: row,
                          from: k.flatSlice(b * batch.length * row, batch.length * row), lds: row, rows: batch.length, cols: row)
                be.copy2D(cache.values[l].flatSlice(dst, batch.length * row), ldd: row,
                          from: v.flatSlice(b * batch.length * row, batch.length * row), lds: row, rows: batch.length, cols: row)
            }
            attention(k: cache.keys[l], v: cache.values[l], keyLength: keyLength, keyMask: mask, scale: scale,
                         window: window, softcap: softcap)
        } else if let prefixed, let prefix {
            let prefixLength = prefix.length, span = prefixLength + batch.length
            KVCache.place(prefix: prefix.keys[l], stride: prefix.stride, length: prefixLength, then: k, into: prefixed.keys,
                          span: span, batch: batch.batch, backend: be)
            KVCache.place(prefix: prefix.values[l], stride: prefix.stride, length: prefixLength, then: v, into: prefixed.values,
                          span: span, batch: batch.batch, backend: be)
            attention(k: prefixed.keys, v: prefixed.values, keyLength: span, keyMask: prefixed.mask, scale: scale,
                         window: window, softcap: softcap)
        } else {
            let kv = [batch.batch, batch.length, c.numKVHeads, c.headDim]
            attention(k: k.reshaped(kv), v: v.reshaped(kv), keyLength: nil, keyMask: mask, scale: scale, window: window,
                         softcap: softcap)
        }
    }

    /// out (n, hidden) = the layer's MLP of its input: down(silu(gate)·up) or down(act(up)).
    /// `fused`: the (n, 2·intermediate) output of a fused gate/up GEMM, split into gate and up.
    /// `rounded`: the input already rounded for gate and up (by its norm).
    func mlp(_ layer: DecoderLayer, _ input: Tensor, gate: Tensor?, up: Tensor, fused: Tensor?, out: Tensor, rounded: Tensor? = nil) throws {
        switch layer.mlp {
        case .gated(let gl, let ul, let dl):
            let x16 = try rounded ?? roundedOnce(input, for: [gl, ul])
            try linear(gate!, input, gl, rounded: x16)
            try linear(up, input, ul, rounded: x16)
            let h16 = try gatedActivation(gate: gate!, up: up, roundedFor: dl)
            try linear(out, up, dl, rounded: h16)
        case .fusedGated(let gul, let dl):
            let (n, f) = (input.shape[0], config.intermediateSize), both = fused!
            try linear(both, input, gul, rounded: rounded)
            backend.copy2D(gate!, ldd: f, from: both, lds: 2 * f, rows: n, cols: f)
            backend.copy2D(up, ldd: f, from: both.flatSlice(f, both.count - f), lds: 2 * f, rows: n, cols: f)
            let h16 = try gatedActivation(gate: gate!, up: up, roundedFor: dl)
            try linear(out, up, dl, rounded: h16)
        case .plain(let ul, let dl):
            try linear(up, input, ul, rounded: rounded)
            if let dt = producerHalf([dl]) {  // GELU / ReLU writes down's 16-bit input (activation_half)
                let h16 = try backend.allocate(up.shape, dtype: dt, tag: .activations, zeroed: false)
                backend.activationHalf(plan.activation, up, half: h16, up, times: nil)
                try linear(out, up, dl, rounded: h16)
            } else {
                backend.activation(plan.activation, up, up)
                try linear(out, up, dl)
            }
        }
    }

    /// x rounded once to the 16-bit dtype its mixed-precision GEMMs `layers` all take as stored (gate
    /// and up read the same input): one convert instead of a rounding in each GEMM, the same bits
    /// (gemm_half(round(x)) == gemm_mixed(x)). nil when they do not all take one 16-bit operand
    /// as stored (precision f32, f32 weights, GGML blocks decoded per layer).
    func roundedOnce(_ x: Tensor, for layers: [LinearLayer]) throws -> Tensor? {
        guard let dt = halfOperand(layers) else { return nil }
        let r = try backend.allocate(x.shape, dtype: dt, tag: .activations, zeroed: false)
        backend.convert(into: r, from: x)
        return r
    }

    /// The 16-bit dtype a producer kernel rounds its output to for the GEMMs `layers` (halfOperand),
    /// or nil (also with roundInProducers off).
    func producerHalf(_ layers: [LinearLayer]) -> DType? { roundInProducers ? halfOperand(layers) : nil }

    /// The 16-bit dtype the mixed-precision GEMMs `layers` all take as stored, or nil.
    func halfOperand(_ layers: [LinearLayer]) -> DType? {
        guard precision != .f32, let dt = layers.first.map({ weights[$0.weight].dtype }), dt == .bf16 || dt == .f16,
              layers.allSatisfy({ weights[$0.weight].dtype == dt }) else { return nil }
        return dt
    }

    /// up = act(gate) ⊙ up: SwiGLU in one kernel, other activations (Gemma's tanh-GELU) in two.
    /// With `next` taking a 16-bit operand as stored (mixed precision), one kernel also writes up
    /// rounded to it (swiglu_half, or activation_half for GeGLU: the bits of the op then convert),
    /// for `linear(rounded:)`; gate is then left as it was.
    func gatedActivation(gate: Tensor, up: Tensor, roundedFor next: LinearLayer) throws -> Tensor? {
        if let dt = producerHalf([next]) {
            let r = try backend.allocate(up.shape, dtype: dt, tag: .activations, zeroed: false)
            if plan.activation == .silu { backend.swigluHalf(up, half: r, gate: gate, up: up) }
            else { backend.activationHalf(plan.activation, up, half: r, gate, times: up) }
            return r
        }
        if plan.activation == .silu {
            backend.swiglu(up, gate: gate, up: up)
        } else {
            backend.activation(plan.activation, gate, gate)
            backend.mul(up, gate, up)
        }
        return nil
    }

    /// Token ids (n), positions (n) and, without a cache, the key mask (B, T) as views of one
    /// buffer filled by one host-to-device copy (each copy waits for a device's stream).
    func upload(_ batch: TokenBatch, positions: [Int32], mask withMask: Bool) throws -> (ids: Tensor, positions: Tensor, mask: Tensor?) {
        let n = batch.tokenCount, maskWords = withMask ? (batch.mask.count + 3) / 4 : 0
        var words = [Int32](repeating: 0, count: 2 * n + maskWords)
        words.withUnsafeMutableBufferPointer { w in
            for i in 0..<n { w[i] = batch.ids[i]; w[n + i] = positions[i] }
            if withMask { UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(w)[(8 * n)...]).copyBytes(from: batch.mask) }
        }
        let all = try backend.tensor(words, shape: [words.count], tag: .activations)
        return (Tensor(buffer: all.buffer, dtype: .i32, shape: [n]), Tensor(buffer: all.buffer, dtype: .i32, shape: [n], offset: n),
                withMask ? Tensor(buffer: all.buffer, dtype: .u8, shape: [batch.batch, batch.length], offset: 8 * n) : nil)
    }

    /// x (n, hidden) = token embeddings (projected in to the hidden size where the plan says so)
    /// + learned positions where the family has them. `override` (n, embedding width) replaces the
    /// token embeddings.
    func embed(_ x: Tensor, ids: Tensor, positions: Tensor, override: Tensor? = nil) throws {
        let be = backend
        func tokens(_ out: Tensor) throws {
            if let override {
                be.copy2D(out, ldd: out.shape[1], from: override, lds: out.shape[1], rows: out.shape[0], cols: out.shape[1])
            } else {
                try be.embedding(out, table: weights[plan.embed], ids: ids, checkedOnHost: true)
            }
        }
        var pos: Tensor?
        if let table = plan.positions {
            let p = try be.allocate(x.shape, tag: .activations, zeroed: false)
            try be.embedding(p, table: weights[table], ids: positions, checkedOnHost: true)
            pos = p
        }
        if let projectIn = plan.projectIn {
            let small = try be.allocate([ids.count, weights[plan.embed].shape[1]], tag: .activations, zeroed: false)
            try tokens(small)
            try linear(x, small, projectIn)
        } else {
            try tokens(x)
        }
        if let s = embeddingScale, override == nil { be.scale(x, x, by: s) }
        if let pos { be.add(x, x, pos) }
    }

    // MARK: outputs

    /// logits (rows, vocab) of hidden rows (rows, outputWidth).
    public func logits(ofHidden hidden: Tensor) throws -> Tensor {
        let out = try backend.allocate([hidden.shape[0], config.vocabSize], tag: .activations, zeroed: false)
        try linear(out, hidden, plan.head)
        if let cap = config.finalLogitSoftcap { backend.softcap(out, cap: cap) }
        return out
    }

    /// Logits of every position, (B·T, vocab).
    public func allLogits(_ batch: TokenBatch, cache: KVCache? = nil) throws -> Tensor {
        try logits(ofHidden: try hiddenStates(batch, cache: cache))
    }

    /// Logits of each row's last position (B, vocab) — a real token under left padding.
    public func lastLogits(_ batch: TokenBatch, cache: KVCache? = nil) throws -> Tensor {
        try lastLogits(ofHidden: try hiddenStates(batch, cache: cache), batch: batch)
    }

    func lastLogits(ofHidden hidden: Tensor, batch: TokenBatch) throws -> Tensor {
        let e = outputWidth
        let last = try backend.allocate([batch.batch, e], tag: .activations, zeroed: false)
        backend.copy2D(last, ldd: e, from: hidden.flatSlice((batch.length - 1) * e, hidden.count - (batch.length - 1) * e),
                       lds: batch.length * e, rows: batch.batch, cols: e)
        return try logits(ofHidden: last)
    }

    /// log p(targets[i] | tokens ≤ i) for every position i of the batch (B·T); a negative target
    /// gives 0. Logits are produced `chunk` rows at a time, so the full (B·T, vocab) matrix is never
    /// held: this is what ZO scoring needs.
    /// `chunk` (default: 64 rows on the CPU, where a chunk of logits stays in cache; 1024 on a GPU,
    /// whose head GEMM needs rows to fill its SMs: 200 MB of logits at SmolLM2's vocabulary).
    public func tokenLogProbs(_ batch: TokenBatch, targets: [Int32], chunk: Int? = nil) throws -> [Float] {
        precondition(targets.count == batch.tokenCount, "one target per position")
        let chunk = chunk ?? (backend.device == .cpu ? 64 : 1024)
        if !streamsHead, let replayed = try forwardGraphs.logProbs(self, batch, targets: targets, head: .tokens(chunk: chunk)) {
            return replayed
        }
        let rows = batch.tokenCount
        // Uploaded before the forward is queued: an upload waits for the device's stream.
        let targetT = try backend.tensor(targets, shape: [rows], tag: .activations)
        let hidden = try hiddenStates(batch)
        if streamsHead, let scratch {
            return try streamedLogProbs(hidden, targets: targetT, hostTargets: targets, head: weights[plan.head.weight], scratch: scratch, chunk: chunk)
        }
        let out = try backend.allocate([rows], tag: .activations, zeroed: false)
        try headLogProbs(hidden, targets: targetT, chunk: chunk, into: out)
        return try backend.read(out)  // throws a failed kernel (named) instead of returning its log-probs
    }

    /// A low-precision head larger than the f32 scratch (precision f32; mixed precision has no f32
    /// scratch): its log-probs stream over panels of the vocabulary (`streamedLogProbs`).
    var streamsHead: Bool {
        let w = weights[plan.head.weight]
        guard let scratch, w.dtype != .f32 else { return false }
        return w.count > scratch.count
    }

    /// out (rows) = log-probs of `targets` from the final hidden states, `chunk` rows of logits at a
    /// time, all on the device (nothing read back: the tail of a recorded graph).
    func headLogProbs(_ hidden: Tensor, targets targetT: Tensor, chunk: Int, into out: Tensor) throws {
        let rows = targetT.count, e = outputWidth
        // The head as every chunk's GEMM operand, decoded or converted once (nothing else uses the
        // scratch in between): a 16-bit operand in mixed precision, else f32.
        let head = mixedOperand(plan.head.weight) ?? f32Weight(plan.head.weight)
        let logits = try backend.allocate([min(chunk, rows), config.vocabSize], tag: .activations, zeroed: false)
        var start = 0
        while start < rows {
            let m = min(chunk, rows - start)
            let l = logits.rows(0, m)
            try linear(l, hidden.rows(start, m).reshaped([m, e]), plan.head, converted: head)
            if let cap = config.finalLogitSoftcap { backend.softcap(l, cap: cap) }
            backend.tokenLogProbs(out.flatSlice(start, m), l, targets: targetT.flatSlice(start, m))
            start += m
        }
    }

    /// log p(candidates[b][c] | row b) after each row's last position, for rows with one or more
    /// single-token candidates (a classification prompt's label words): the log-softmax and the
    /// gather run on the device and only B × C floats come back. Rows may have fewer candidates.
    public func lastTokenLogProbs(_ batch: TokenBatch, candidates: [[Int32]]) throws -> [[Float]] {
        precondition(candidates.count == batch.batch, "one candidate list per row")
        let (b, c) = (batch.batch, candidates.map(\.count).max() ?? 0)
        // Column-major (C, B): candidate j of every row is one contiguous target vector.
        var ids = [Int32](repeating: -1, count: b * c)
        for (r, row) in candidates.enumerated() {
            for (j, t) in row.enumerated() {
                precondition(t >= 0 && Int(t) < config.vocabSize, "candidate token \(t) outside the vocabulary")
                ids[j * b + r] = t
            }
        }
        let host: [Float]
        if let replayed = try forwardGraphs.logProbs(self, batch, targets: ids, head: .lastCandidates(c)) {
            host = replayed
        } else {
            // Uploaded before the forward is queued: an upload waits for the device's stream.
            let targets = try backend.tensor(ids, shape: [b * c], tag: .activations)
            let out = try backend.allocate([b * c], tag: .activations, zeroed: false)
            try candidateLogProbs(try hiddenStates(batch), batch: batch, targets: targets, into: out)
            host = try backend.read(out)
        }
        return candidates.enumerated().map { r, row in row.indices.map { host[$0 * b + r] } }
    }

    /// out (C·B, column-major) = the log-probs of `targets` (C·B) after each row's last position.
    func candidateLogProbs(_ hidden: Tensor, batch: TokenBatch, targets: Tensor, into out: Tensor) throws {
        let b = batch.batch, logits = try lastLogits(ofHidden: hidden, batch: batch)
        for j in 0..<(targets.count / max(b, 1)) {
            backend.tokenLogProbs(out.flatSlice(j * b, b), logits, targets: targets.flatSlice(j * b, b))
        }
    }

    /// Token log-probs through a low-precision head larger than the scratch: panels of the
    /// vocabulary outside (each dequantized once), row chunks inside, and a log-sum-exp streamed
    /// over the panels (`logSumExpPanel`), so neither the f32 head nor a full logits row is held.
    /// Equals the one-pass path to f32 rounding of the rescaled sums (no forward hook sees the head).
    func streamedLogProbs(_ hidden: Tensor, targets: Tensor, hostTargets: [Int32], head: Tensor, scratch: Tensor, chunk: Int) throws -> [Float] {
        let rows = targets.count, (vocab, e) = (head.shape[0], head.shape[1])
        let panel = scratch.count / e
        var start = [Float](repeating: 0, count: 3 * rows)
        for r in 0..<rows { start[3 * r] = -.infinity }
        let state = try backend.tensor(start, shape: [3 * rows], tag: .activations)
        let logits = try backend.allocate([min(chunk, rows) * min(panel, vocab)], tag: .activations)
        for p0 in stride(from: 0, to: vocab, by: panel) {
            let pr = min(panel, vocab - p0)
            let f = scratch.flatSlice(0, pr * e).reshaped([pr, e])
            backend.convert(into: f, from: head.rows(p0, pr))
            for r0 in stride(from: 0, to: rows, by: chunk) {
                let m = min(chunk, rows - r0)
                let l = logits.flatSlice(0, m * pr).reshaped([m, pr])
                backend.matmul(l, hidden.rows(r0, m).reshaped([m, e]), transposeA: false, f, transposeB: true, alpha: 1, beta: 0)
                if let cap = config.finalLogitSoftcap { backend.softcap(l, cap: cap) }
                backend.logSumExpPanel(state.flatSlice(3 * r0, 3 * m), l, ldx: pr, cols: pr, col0: p0, targets: targets.flatSlice(r0, m))
            }
        }
        let st = try backend.read(state)
        return (0..<rows).map { r in
            let t = hostTargets[r]
            return t < 0 || Int(t) >= vocab ? 0 : (st[3 * r + 2] - st[3 * r]) - Foundation.log(st[3 * r + 1])
        }
    }

    /// A cache for `batch` rows of up to `capacity` positions.
    /// (The hook's virtual positions come on top of `capacity`.)
    public func makeCache(batch: Int, capacity: Int) throws -> KVCache {
        try KVCache(config: config, batch: batch, capacity: capacity + (hook?.virtualPositions ?? 0), backend: backend)
    }

    /// Runs P input embeddings (P, embedding width) as one sequence at positions 0…P−1, with no
    /// hook, and returns its keys and values: prompt tuning's virtual tokens, which attend only to
    /// each other and so are the same in front of every sequence.
    public func keyValues(ofEmbeddings e: Tensor) throws -> AttentionPrefix {
        try keyValues(ids: [Int32](repeating: 0, count: e.shape[0]), embeddings: e)
    }

    /// The keys and values (what a KV cache holds) of `ids` run as one sequence at positions
    /// 0…P−1, with no hook: prefix tuning's initialisation from real activations.
    public func keyValues(ofTokens ids: [Int32]) throws -> AttentionPrefix {
        try keyValues(ids: ids, embeddings: nil)
    }

    func keyValues(ids: [Int32], embeddings: Tensor?) throws -> AttentionPrefix {
        let p = ids.count
        let cache = try KVCache(config: config, batch: 1, capacity: p, backend: backend)
        let saved = hook
        hook = nil
        defer { hook = saved }
        _ = try hiddenStates(TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: p), batch: 1, length: p),
                             cache: cache, inputEmbeddings: embeddings)
        return AttentionPrefix(length: p, keys: cache.keys, values: cache.values, stride: config.numKVHeads * config.headDim)
    }

    /// The linear layer whose weight is `weight` (nil: not a linear layer's weight).
    public func linearLayer(_ weight: String) -> LinearLayer? { linearsByWeight[weight] }

    /// The token embedding table's name (its width is the embedding width e).
    public var embeddingTableName: String { plan.embed }
}

extension DecoderLayer.Projections {
    /// The GEMMs that read the attention sublayer's input.
    var layers: [LinearLayer] {
        switch self {
        case .separate(let q, let k, let v): return [q, k, v]
        case .fused(let f, _): return [f]
        }
    }
}

extension DecoderLayer.MLP {
    /// The GEMMs that read the MLP's input.
    var inputLayers: [LinearLayer] {
        switch self {
        case .gated(let g, let u, _): return [g, u]
        case .fusedGated(let gu, _): return [gu]
        case .plain(let u, _): return [u]
        }
    }
}
