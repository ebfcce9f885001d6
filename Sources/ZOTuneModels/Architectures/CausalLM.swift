import Foundation
import ZOTuneBackend

/// A decoder-only language model (OPT, GPT-2 or Llama) on one backend: weights, and forwards that
/// return hidden states, logits, or the log-probs of given target tokens.
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
    let invFreq: Tensor?
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
        weights = try ModelWeights.load(specs, tied: tied, from: reader, backend: backend, dtype: dtype, keepBlocks: keepBlocks)
        if config.architecture == .llama {
            let inv = RotaryEmbedding.inverseFrequencies(dim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
            invFreq = try backend.tensor(inv, shape: [inv.count], tag: .weights)
        } else {
            invFreq = nil
        }
        scratch = try CausalLM.scratchElements(weights, mixed: precision != .f32).map { try backend.allocate([$0], tag: .scratch) }
        halfScratch = precision == .f32 ? nil
            : try CausalLM.blockMatrixElements(weights).map { try backend.allocate([$0], dtype: .bf16, tag: .scratch, zeroed: false) }
    }

    /// Elements of the f32 scratch: the largest matrix stored in f16/bf16/blocks, converted whole
    /// before its GEMM; but the head goes through in panels of rows (its f32 copy would be the
    /// largest buffer of a low-precision base: 108 MiB on SmolLM2), so it only needs a panel of
    /// at least 2²⁰ elements. nil: every matrix is f32.
    /// `mixed`: f16/bf16 matrices go to the GEMM as stored and GGUF blocks through the bf16 scratch:
    /// no f32 scratch.
    static func scratchElements(_ weights: ModelWeights, mixed: Bool = false) -> Int? {
        if mixed { return nil }
        // Embedding tables are only gathered, row by row (a tied head is counted as the head).
        let gathered: Set<String> = ["model.embed_tokens.weight", "model.decoder.embed_tokens.weight", "transformer.wte.weight",
                                     "model.decoder.embed_positions.weight", "transformer.wpe.weight"]
        var largest = 0
        for name in weights.names where weights[name].rank == 2 && weights[name].dtype != .f32 && !gathered.contains(name) {
            let w = weights[name]
            largest = max(largest, name == "lm_head.weight" ? min(w.count, 1 << 20) : w.count)
        }
        return largest > 0 ? largest : nil
    }

    /// Elements of the bf16 scratch of mixed precision: the largest GGUF-block matrix, whole (the
    /// head too: 57 MB in bf16 on SmolLM2); nil when no matrix is stored in blocks.
    static func blockMatrixElements(_ weights: ModelWeights) -> Int? {
        let gathered: Set<String> = ["model.embed_tokens.weight", "model.decoder.embed_tokens.weight", "transformer.wte.weight",
                                     "model.decoder.embed_positions.weight", "transformer.wpe.weight"]
        let sizes = weights.names.filter { weights[$0].rank == 2 && weights[$0].dtype.ggmlType != nil && !gathered.contains($0) }
            .map { weights[$0].count }
        return sizes.max()
    }

    /// Reads every weight again from the checkpoint into the existing buffers (no extra memory):
    /// how a run returns to the base model before replaying part of a trajectory.
    public func reloadWeights() throws {
        var seen = Set<ObjectIdentifier>()
        for name in weights.names {
            let t = weights[name]
            guard seen.insert(ObjectIdentifier(t.buffer)).inserted else { continue }
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

    /// The tensors an architecture reads, with their expected shapes, and which may be tied.
    static func tensorSpecs(_ c: ModelConfig) -> ([ModelWeights.Spec], [String: String]) {
        typealias S = ModelWeights.Spec
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        var specs: [S] = []
        var tied: [String: String] = [:]
        switch c.architecture {
        case .opt:
            let p = "model.decoder."
            let e = c.wordEmbedProjDim ?? h
            func add(_ n: String, _ shape: [Int]) { specs.append(S(name: p + n, shape: shape, aliases: ["decoder." + n])) }
            add("embed_tokens.weight", [v, e])
            add("embed_positions.weight", [c.maxPositions + c.positionOffset, h])
            if e != h {
                add("project_in.weight", [h, e])
                add("project_out.weight", [e, h])
            }
            for l in 0..<c.numLayers {
                let q = "layers.\(l)."
                for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                    add(q + "self_attn.\(proj).weight", [h, h])
                    add(q + "self_attn.\(proj).bias", [h])
                }
                add(q + "self_attn_layer_norm.weight", [h]); add(q + "self_attn_layer_norm.bias", [h])
                add(q + "fc1.weight", [f, h]); add(q + "fc1.bias", [f])
                add(q + "fc2.weight", [h, f]); add(q + "fc2.bias", [h])
                add(q + "final_layer_norm.weight", [h]); add(q + "final_layer_norm.bias", [h])
            }
            if c.doLayerNormBefore {
                add("final_layer_norm.weight", [h]); add("final_layer_norm.bias", [h])
            }
            specs.append(S(name: "lm_head.weight", shape: [v, e]))
            if c.tieWordEmbeddings { tied["lm_head.weight"] = p + "embed_tokens.weight" }
        case .gpt2:
            let p = "transformer."
            func add(_ n: String, _ shape: [Int]) { specs.append(S(name: p + n, shape: shape, aliases: [n])) }
            add("wte.weight", [v, h])
            add("wpe.weight", [c.maxPositions, h])
            for l in 0..<c.numLayers {
                let q = "h.\(l)."
                add(q + "ln_1.weight", [h]); add(q + "ln_1.bias", [h])
                add(q + "attn.c_attn.weight", [h, 3 * h]); add(q + "attn.c_attn.bias", [3 * h])   // Conv1D: (in, out)
                add(q + "attn.c_proj.weight", [h, h]); add(q + "attn.c_proj.bias", [h])
                add(q + "ln_2.weight", [h]); add(q + "ln_2.bias", [h])
                add(q + "mlp.c_fc.weight", [h, f]); add(q + "mlp.c_fc.bias", [f])
                add(q + "mlp.c_proj.weight", [f, h]); add(q + "mlp.c_proj.bias", [h])
            }
            add("ln_f.weight", [h]); add("ln_f.bias", [h])
            specs.append(S(name: "lm_head.weight", shape: [v, h]))
            if c.tieWordEmbeddings { tied["lm_head.weight"] = p + "wte.weight" }
        case .llama:
            let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
            func add(_ n: String, _ shape: [Int]) { specs.append(S(name: n, shape: shape)) }
            add("model.embed_tokens.weight", [v, h])
            for l in 0..<c.numLayers {
                let q = "model.layers.\(l)."
                add(q + "input_layernorm.weight", [h])
                for (proj, rows) in [("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)] {
                    add(q + "self_attn.\(proj).weight", [rows, h])
                    if c.attentionBias { add(q + "self_attn.\(proj).bias", [rows]) }
                }
                add(q + "self_attn.o_proj.weight", [h, qd])
                if c.attentionBias { add(q + "self_attn.o_proj.bias", [h]) }
                add(q + "post_attention_layernorm.weight", [h])
                add(q + "mlp.gate_proj.weight", [f, h]); add(q + "mlp.up_proj.weight", [f, h]); add(q + "mlp.down_proj.weight", [h, f])
                if c.mlpBias {
                    add(q + "mlp.gate_proj.bias", [f]); add(q + "mlp.up_proj.bias", [f]); add(q + "mlp.down_proj.bias", [h])
                }
            }
            add("model.norm.weight", [h])
            add("lm_head.weight", [v, h])
            if c.tieWordEmbeddings { tied["lm_head.weight"] = "model.embed_tokens.weight" }
        }
        return (specs, tied)
    }

    /// Width of the final hidden states (OPT-350m projects out to the embedding width).
    public var outputWidth: Int { config.architecture == .opt ? (config.wordEmbedProjDim ?? config.hiddenSize) : config.hiddenSize }

    // MARK: building blocks

    /// out = x·Wᵀ + b for a Linear weight (out, in), or x·W + b for a GPT-2 Conv1D weight (in, out).
    /// `converted`: the weight already in f32 (a head used chunk after chunk).
    func linear(_ out: Tensor, _ x: Tensor, _ name: String, bias: String? = nil, conv1D: Bool = false, converted: Tensor? = nil) throws {
        let w = weights[name]
        if let op = converted ?? mixedOperand(name), op.dtype != .f32 {
            let k = x.shape[x.rank - 1], m = x.count / max(k, 1)
            let ws = try workspace(bytes: backend.mixedWorkspaceBytes(m: m, n: out.shape[out.rank - 1], k: k))
            backend.matmulMixed(out, x, weight: op, transposeB: !conv1D, workspace: ws)
        } else if converted == nil, let scratch, w.dtype != .f32, w.count > scratch.count {
            precondition(!conv1D, "\(name): only the (out, in) head goes in panels")
            try panelLinear(out, x, weights[name], scratch: scratch)
        } else {
            backend.matmul(out, x, transposeA: false, converted ?? f32Weight(name), transposeB: !conv1D, alpha: 1, beta: 0)
        }
        if let bias, let b = weights.optional(bias) { backend.addRows(out, bias: b) }
        hook?.linearDone(weight: name, input: x, output: out, conv1D: conv1D)
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

    func layerNorm(_ out: Tensor, _ x: Tensor, _ prefix: String) {
        backend.layerNorm(out, x, gamma: weights[prefix + ".weight"], beta: weights[prefix + ".bias"], eps: config.normEps)
    }

    /// Position ids of each token: Llama/GPT-2 count real tokens (left padding does not shift a
    /// sequence); OPT adds its offset of 2 and gives pads position 1, as transformers does.
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
                    pos[i] = config.architecture == .opt ? offset - 1 : 0
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
    /// are then ignored): how prompt tuning's virtual tokens enter.
    func hiddenStates(_ batch: TokenBatch, cache: KVCache?, inputEmbeddings: Tensor?) throws -> Tensor {
        let c = config
        let (n, h) = (batch.tokenCount, c.hiddenSize)
        let be = backend
        if let bad = batch.ids.first(where: { $0 < 0 || Int($0) >= c.vocabSize }) {
            throw ModelError(file: "input", field: "token ids", "id \(bad) is outside the vocabulary (\(c.vocabSize))")
        }
        hook?.forwardBegins(batch)
        // Virtual positions in front of every sequence: asked once per sequence (a cache keeps them).
        let prefix = cache.map({ $0.length == 0 }) ?? true ? try hook?.attentionPrefix(self) : nil
        let prefixLength = prefix?.length ?? 0
        if let prefix, let cache { try cache.prefill(prefix, backend: be) }
        let pos = positions(batch, cache: cache, start: prefixLength)
        if let maxPos = pos.max(), c.architecture != .llama, Int(maxPos) >= c.maxPositions + c.positionOffset {
            throw ModelError(file: "input", field: "positions", "\(maxPos - Int32(c.positionOffset) + 1) positions exceed the model's \(c.maxPositions)")
        }
        let inputs = try upload(batch, positions: pos, mask: cache == nil)
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
        let gate = c.architecture == .llama ? try buffer([n, c.intermediateSize]) : nil
        let qkv = c.architecture == .gpt2 ? try buffer([n, 3 * h]) : nil
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

        let scale = 1 / Float(c.headDim).squareRoot()
        for l in 0..<c.numLayers {
            // ---- attention ----
            switch c.architecture {
            case .llama:
                let p = "model.layers.\(l)."
                be.rmsNorm(normed, x, gamma: weights[p + "input_layernorm.weight"], eps: c.normEps)
                try linear(q, normed, p + "self_attn.q_proj.weight", bias: p + "self_attn.q_proj.bias")
                try linear(k, normed, p + "self_attn.k_proj.weight", bias: p + "self_attn.k_proj.bias")
                try linear(v, normed, p + "self_attn.v_proj.weight", bias: p + "self_attn.v_proj.bias")
                be.rope(q, positions: posT, headDim: c.headDim, rotaryDim: c.headDim, invFreq: invFreq!)
                be.rope(k, positions: posT, headDim: c.headDim, rotaryDim: c.headDim, invFreq: invFreq!)
            case .opt:
                let p = "model.decoder.layers.\(l)."
                let input = c.doLayerNormBefore ? normed : x
                if c.doLayerNormBefore { layerNorm(normed, x, p + "self_attn_layer_norm") }
                try linear(q, input, p + "self_attn.q_proj.weight", bias: p + "self_attn.q_proj.bias")
                try linear(k, input, p + "self_attn.k_proj.weight", bias: p + "self_attn.k_proj.bias")
                try linear(v, input, p + "self_attn.v_proj.weight", bias: p + "self_attn.v_proj.bias")
            case .gpt2:
                let p = "transformer.h.\(l)."
                layerNorm(normed, x, p + "ln_1")
                try linear(qkv!, normed, p + "attn.c_attn.weight", bias: p + "attn.c_attn.bias", conv1D: true)
                be.copy2D(q, ldd: h, from: qkv!, lds: 3 * h, rows: n, cols: h)
                be.copy2D(k, ldd: h, from: qkv!.flatSlice(h, n * 3 * h - h), lds: 3 * h, rows: n, cols: h)
                be.copy2D(v, ldd: h, from: qkv!.flatSlice(2 * h, n * 3 * h - 2 * h), lds: 3 * h, rows: n, cols: h)
            }
            let qv = q.reshaped([batch.batch, batch.length, c.numHeads, c.headDim])
            let attnOut = attn.reshaped(qv.shape)
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
                be.attention(attnOut, q: qv, k: cache.keys[l], v: cache.values[l], keyLength: keyLength, keyMask: mask, scale: scale)
            } else if let prefixed, let prefix {
                let span = prefixLength + batch.length
                KVCache.place(prefix: prefix.keys[l], stride: prefix.stride, length: prefixLength, then: k, into: prefixed.keys,
                              span: span, batch: batch.batch, backend: be)
                KVCache.place(prefix: prefix.values[l], stride: prefix.stride, length: prefixLength, then: v, into: prefixed.values,
                              span: span, batch: batch.batch, backend: be)
                be.attention(attnOut, q: qv, k: prefixed.keys, v: prefixed.values, keyLength: span, keyMask: prefixed.mask, scale: scale)
            } else {
                let kv = [batch.batch, batch.length, c.numKVHeads, c.headDim]
                be.attention(attnOut, q: qv, k: k.reshaped(kv), v: v.reshaped(kv), keyLength: nil, keyMask: mask, scale: scale)
            }
            switch c.architecture {
            case .llama:
                try linear(proj, attn, "model.layers.\(l).self_attn.o_proj.weight", bias: "model.layers.\(l).self_attn.o_proj.bias")
            case .opt:
                try linear(proj, attn, "model.decoder.layers.\(l).self_attn.out_proj.weight", bias: "model.decoder.layers.\(l).self_attn.out_proj.bias")
            case .gpt2:
                try linear(proj, attn, "transformer.h.\(l).attn.c_proj.weight", bias: "transformer.h.\(l).attn.c_proj.bias", conv1D: true)
            }
            be.add(x, x, proj)
            if c.architecture == .opt && !c.doLayerNormBefore { layerNorm(x, x, "model.decoder.layers.\(l).self_attn_layer_norm") }

            // ---- MLP ----
            switch c.architecture {
            case .llama:
                let p = "model.layers.\(l)."
                be.rmsNorm(normed, x, gamma: weights[p + "post_attention_layernorm.weight"], eps: c.normEps)
                try linear(gate!, normed, p + "mlp.gate_proj.weight", bias: p + "mlp.gate_proj.bias")
                try linear(up, normed, p + "mlp.up_proj.weight", bias: p + "mlp.up_proj.bias")
                be.swiglu(up, gate: gate!, up: up)
                try linear(proj, up, p + "mlp.down_proj.weight", bias: p + "mlp.down_proj.bias")
            case .opt:
                let p = "model.decoder.layers.\(l)."
                let input = c.doLayerNormBefore ? normed : x
                if c.doLayerNormBefore { layerNorm(normed, x, p + "final_layer_norm") }
                try linear(up, input, p + "fc1.weight", bias: p + "fc1.bias")
                be.activation(c.activation, up, up)
                try linear(proj, up, p + "fc2.weight", bias: p + "fc2.bias")
            case .gpt2:
                let p = "transformer.h.\(l)."
                layerNorm(normed, x, p + "ln_2")
                try linear(up, normed, p + "mlp.c_fc.weight", bias: p + "mlp.c_fc.bias", conv1D: true)
                be.activation(c.activation, up, up)
                try linear(proj, up, p + "mlp.c_proj.weight", bias: p + "mlp.c_proj.bias", conv1D: true)
            }
            be.add(x, x, proj)
            if c.architecture == .opt && !c.doLayerNormBefore { layerNorm(x, x, "model.decoder.layers.\(l).final_layer_norm") }
        }

        // ---- final norm (and OPT's projection out) ----
        switch c.architecture {
        case .llama:
            be.rmsNorm(x, x, gamma: weights["model.norm.weight"], eps: c.normEps)
        case .gpt2:
            layerNorm(x, x, "transformer.ln_f")
        case .opt:
            if c.doLayerNormBefore { layerNorm(x, x, "model.decoder.final_layer_norm") }
            if outputWidth != h {
                let out = try buffer([n, outputWidth])
                try linear(out, x, "model.decoder.project_out.weight")
                return out
            }
        }
        return x
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

    /// x (n, hidden) = token embeddings (+ learned positions for OPT and GPT-2).
    /// `override` (n, embedding width) replaces the token embeddings.
    func embed(_ x: Tensor, ids: Tensor, positions: Tensor, override: Tensor? = nil) throws {
        let c = config, be = backend
        func tokens(_ out: Tensor, _ table: String) throws {
            if let override {
                be.copy2D(out, ldd: out.shape[1], from: override, lds: out.shape[1], rows: out.shape[0], cols: out.shape[1])
            } else {
                try be.embedding(out, table: weights[table], ids: ids, checkedOnHost: true)
            }
        }
        switch c.architecture {
        case .llama:
            try tokens(x, "model.embed_tokens.weight")
        case .gpt2:
            let pos = try be.allocate(x.shape, tag: .activations, zeroed: false)
            try tokens(x, "transformer.wte.weight")
            try be.embedding(pos, table: weights["transformer.wpe.weight"], ids: positions, checkedOnHost: true)
            be.add(x, x, pos)
        case .opt:
            let e = outputWidth
            let pos = try be.allocate(x.shape, tag: .activations, zeroed: false)
            try be.embedding(pos, table: weights["model.decoder.embed_positions.weight"], ids: positions, checkedOnHost: true)
            if e != c.hiddenSize {
                let small = try be.allocate([ids.count, e], tag: .activations, zeroed: false)
                try tokens(small, "model.decoder.embed_tokens.weight")
                try linear(x, small, "model.decoder.project_in.weight")
            } else {
                try tokens(x, "model.decoder.embed_tokens.weight")
            }
            be.add(x, x, pos)
        }
    }

    // MARK: outputs

    /// logits (rows, vocab) of hidden rows (rows, outputWidth).
    public func logits(ofHidden hidden: Tensor) throws -> Tensor {
        let out = try backend.allocate([hidden.shape[0], config.vocabSize], tag: .activations, zeroed: false)
        try linear(out, hidden, "lm_head.weight")
        return out
    }

    /// Logits of every position, (B·T, vocab).
    public func allLogits(_ batch: TokenBatch, cache: KVCache? = nil) throws -> Tensor {
        try logits(ofHidden: try hiddenStates(batch, cache: cache))
    }

    /// Logits of each row's last position (B, vocab) — a real token under left padding.
    public func lastLogits(_ batch: TokenBatch, cache: KVCache? = nil) throws -> Tensor {
        let hidden = try hiddenStates(batch, cache: cache)
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
        let rows = batch.tokenCount, e = outputWidth
        // Uploaded before the forward is queued: an upload waits for the device's stream.
        let targetT = try backend.tensor(targets, shape: [rows], tag: .activations)
        let hidden = try hiddenStates(batch)
        let headWeight = weights["lm_head.weight"]
        // The head as every chunk's GEMM operand, decoded or converted once (nothing else uses the
        // scratch in between): a 16-bit operand in mixed precision, else f32.
        let head: Tensor
        if let op = mixedOperand("lm_head.weight") {
            head = op
        } else if let scratch, headWeight.dtype != .f32, headWeight.count > scratch.count {
            return try streamedLogProbs(hidden, targets: targetT, hostTargets: targets, head: headWeight, scratch: scratch, chunk: chunk)
        } else {
            head = f32Weight("lm_head.weight")
        }
        let out = try backend.allocate([rows], tag: .activations, zeroed: false)
        let logits = try backend.allocate([min(chunk, rows), config.vocabSize], tag: .activations, zeroed: false)
        var start = 0
        while start < rows {
            let m = min(chunk, rows - start)
            let l = logits.rows(0, m)
            try linear(l, hidden.rows(start, m).reshaped([m, e]), "lm_head.weight", converted: head)
            backend.tokenLogProbs(out.flatSlice(start, m), l, targets: targetT.flatSlice(start, m))
            start += m
        }
        return backend.toHost(out)
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
        // Uploaded before the forward is queued: an upload waits for the device's stream.
        let targets = try backend.tensor(ids, shape: [b * c], tag: .activations)
        let logits = try lastLogits(batch)
        let out = try backend.allocate([b * c], tag: .activations, zeroed: false)
        for j in 0..<c { backend.tokenLogProbs(out.flatSlice(j * b, b), logits, targets: targets.flatSlice(j * b, b)) }
        let host = backend.toHost(out)
        return candidates.enumerated().map { r, row in row.indices.map { host[$0 * b + r] } }
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
                backend.logSumExpPanel(state.flatSlice(3 * r0, 3 * m), l, ldx: pr, cols: pr, col0: p0, targets: targets.flatSlice(r0, m))
            }
        }
        let st = backend.toHost(state)
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

    /// The token embedding table's name (its width is the embedding width e).
    public var embeddingTableName: String {
        switch config.architecture {
        case .llama: return "model.embed_tokens.weight"
        case .gpt2: return "transformer.wte.weight"
        case .opt: return "model.decoder.embed_tokens.weight"
        }
    }
}
