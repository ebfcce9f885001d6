import ZOTuneBackend

/// What a tensor does in a decoder, whatever its checkpoint calls it. Code outside
/// `Architectures/` (adapters, optimizers, block partitions, reports, export) speaks of roles; the
/// family types bind each role to its checkpoint names (Hugging Face and GGUF) once.
public enum Role: String, Sendable, CaseIterable {
    // Outside the layers.
    /// Token embedding table (also the head's storage when tied).
    case embed
    /// Learned position table (OPT, GPT-2).
    case positions
    /// OPT-350m's projections between the embedding width and the hidden size.
    case projectIn, projectOut
    case finalNorm, head
    // Inside a layer.
    /// The norm of the attention sublayer (before it, or after its residual in a post-LN model).
    case attnNorm
    case q, k, v
    /// q, k and v fused in one matrix (GPT-2's c_attn): counts as each of them where a role is asked.
    case qkv
    case o
    /// RMSNorm of q and of k before RoPE: per head (Qwen3, Gemma 3) or over the whole projection (OLMo 2).
    case qNorm, kNorm
    /// The norm of the attention sublayer's output, before its residual add (Gemma 2/3, OLMo 2).
    case postAttnNorm
    /// The norm of the MLP sublayer.
    case mlpNorm
    /// The norm of the MLP's output, before its residual add (Gemma 2/3, OLMo 2).
    case postMLPNorm
    case gate, up, down
    /// gate and up fused in one matrix, gate rows first (Phi-3's gate_up_proj).
    case gateUp

    /// The roles this one stands for (a fused projection stands for its parts).
    public var covers: [Role] {
        switch self {
        case .qkv: return [.q, .k, .v]
        case .gateUp: return [.gate, .up]
        default: return [self]
        }
    }

    /// Whether the role belongs to a layer's attention half (norms go with the sublayer they feed).
    public var isAttention: Bool { [.attnNorm, .q, .k, .v, .qkv, .o, .qNorm, .kNorm, .postAttnNorm].contains(self) }

    /// Whether a tensor of this role lives inside a transformer layer.
    public var isPerLayer: Bool { ![.embed, .positions, .projectIn, .projectOut, .finalNorm, .head].contains(self) }

    /// llama.cpp's name of the role in a GGUF file (`blk.N.<name>.weight` inside a layer), shared
    /// by every family llama.cpp writes.
    public var ggufName: String {
        switch self {
        case .embed: return "token_embd"
        case .positions: return "position_embd"
        case .projectIn, .projectOut: return rawValue   // llama.cpp has no OPT
        case .finalNorm: return "output_norm"
        case .head: return "output"
        case .attnNorm: return "attn_norm"
        case .q: return "attn_q"
        case .k: return "attn_k"
        case .v: return "attn_v"
        case .qkv: return "attn_qkv"
        case .o: return "attn_output"
        case .qNorm: return "attn_q_norm"
        case .kNorm: return "attn_k_norm"
        case .postAttnNorm: return "post_attention_norm"
        case .mlpNorm: return "ffn_norm"
        case .postMLPNorm: return "post_ffw_norm"
        case .gate: return "ffn_gate"
        case .up: return "ffn_up"
        case .down: return "ffn_down"
        case .gateUp: return "ffn_up"   // llama.cpp's phi3: the fused matrix under up's name
        }
    }
}

/// A weight or its bias.
public enum TensorPart: String, Sendable { case weight, bias }

/// Where a checkpoint tensor sits: its layer (nil outside the layers), role and part.
public struct TensorRole: Sendable, Equatable {
    public let layer: Int?
    public let role: Role
    public let part: TensorPart
}

/// How a linear layer's weight is stored: (out, in) as torch's Linear, or (in, out) as GPT-2's Conv1D.
public enum WeightLayout: Sendable { case outIn, inOut }

/// One linear layer of a model: its role, layer, weight and bias names, and storage layout.
public struct LinearLayer: Sendable {
    public let role: Role
    public let layer: Int?
    public let weight: String
    /// nil when the layer has no bias (or the checkpoint does not carry it).
    public let bias: String?
    public let layout: WeightLayout
    /// The checkpoint's own name of the layer inside its block ("self_attn.q_proj", "mlp.c_fc", "fc1"):
    /// what `answers(to:)` also accepts, so the names a checkpoint's users know keep working.
    let localName: String

    /// The module's name: the weight's without ".weight" (what PEFT names adapters after).
    public var module: String { String(weight.dropLast(".weight".count)) }

    /// (out, in) features of `w`, this layer's weight.
    public func features(_ w: Tensor) -> (out: Int, in: Int) { layout == .outIn ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0]) }

    /// Whether a short name selects this layer: "all", its role (q, k, v, o, gate, up, down, qkv,
    /// gateUp) or a role it fuses (q, k or v select a fused qkv, gate or up a fused gate/up: the
    /// whole matrix), its full name without ".weight", or a dotted tail of its checkpoint name with
    /// or without "_proj" (q_proj, out_proj, fc1, c_attn, c_fc, c_proj, self_attn.q, qkv_proj).
    public func answers(to short: String) -> Bool {
        if short == "all" || short == role.rawValue || role.covers.contains(where: { $0.rawValue == short }) || short + ".weight" == weight {
            return true
        }
        let l = localName
        return l == short || l.hasSuffix("." + short) || l.hasSuffix("." + short + "_proj")
            || (short == "o" && l.hasSuffix(".out_proj"))
    }

    /// d = α·Lᵀ·R laid out as this weight is stored, where L (k, out) — or (out, k) when
    /// `outTransposed` — carries the output side and R (k, in) the input side: a weight-shaped sum
    /// of outer products (Zoop's estimate from activations, LoRA's merged B·A).
    public func product(into d: Tensor, out l: Tensor, outTransposed: Bool = false, in r: Tensor, alpha: Float = 1, backend: any Backend) {
        switch layout {
        case .outIn: backend.matmul(d, l, transposeA: !outTransposed, r, transposeB: false, alpha: alpha, beta: 0)
        case .inOut: backend.matmul(d, r, transposeA: true, l, transposeB: outTransposed, alpha: alpha, beta: 0)
        }
    }
}

/// A norm over the hidden size (or a head's dims): LayerNorm (gain and bias) or RMSNorm (gain).
public struct NormLayer: Sendable {
    public enum Kind: Sendable { case layerNorm, rmsNorm }
    public let kind: Kind
    public let weight: String
    public let bias: String?
    /// The gain is 1 + w (Gemma: the checkpoint stores w, transformers multiplies by 1.0 + w in f32).
    public let unitOffset: Bool

    public init(kind: Kind, weight: String, bias: String?, unitOffset: Bool = false) {
        self.kind = kind
        self.weight = weight
        self.bias = bias
        self.unitOffset = unitOffset
    }
}

/// One transformer layer as the forward runs it, built by a family from the shared pieces.
public struct DecoderLayer: Sendable {
    /// q, k, v as three GEMMs or one fused GEMM whose output is split.
    public enum Projections: Sendable {
        case separate(q: LinearLayer, k: LinearLayer, v: LinearLayer)
        /// One matrix whose output is q | k | v, or, `interleaved`, q | k | v within each head
        /// (GPT-NeoX's query_key_value: head h's q, k, v side by side).
        case fused(LinearLayer, interleaved: Bool = false)
    }
    public enum MLP: Sendable {
        /// down(act(gate(x)) ⊙ up(x)) — SwiGLU with silu.
        case gated(gate: LinearLayer, up: LinearLayer, down: LinearLayer)
        /// The same with gate and up as one GEMM whose output is split (gate columns first).
        case fusedGated(gateUp: LinearLayer, down: LinearLayer)
        /// down(act(up(x))).
        case plain(up: LinearLayer, down: LinearLayer)
    }
    /// Where a sublayer's norm goes: on its input (pre-LN) or on the residual stream after it (post-LN, OPT-350m).
    public enum NormPlacement: Sendable { case pre, post }

    /// The sublayer norms (nil: none; OLMo 2 normalises outputs only).
    public let attentionNorm: NormLayer?
    public let projections: Projections
    /// Per-head RMSNorm of q and k (over head_dim) before RoPE (Qwen3).
    public let qNorm: NormLayer?
    public let kNorm: NormLayer?
    /// RoPE on q and k.
    public let rotary: Bool
    /// Keys each query sees, itself included (0: the whole causal past).
    public let window: Int
    /// RoPE with the local (sliding-layer) base instead of the global one (Gemma 3).
    public let localRope: Bool
    public let output: LinearLayer
    /// Norm of the attention output before its residual add (Gemma 2/3, OLMo 2).
    public let postAttentionNorm: NormLayer?
    public let mlpNorm: NormLayer?
    public let mlp: MLP
    /// Norm of the MLP output before its residual add (Gemma 2/3, OLMo 2).
    public let postMLPNorm: NormLayer?
    public let normPlacement: NormPlacement
    /// x + attn(norm₁(x)) + mlp(norm₂(x)) (GPT-NeoX's use_parallel_residual) instead of one after the other.
    public let parallelResidual: Bool

    public init(attentionNorm: NormLayer?, projections: Projections, qNorm: NormLayer? = nil, kNorm: NormLayer? = nil,
                rotary: Bool, window: Int = 0, localRope: Bool = false, output: LinearLayer, postAttentionNorm: NormLayer? = nil,
                mlpNorm: NormLayer?, mlp: MLP, postMLPNorm: NormLayer? = nil, normPlacement: NormPlacement,
                parallelResidual: Bool = false) {
        self.attentionNorm = attentionNorm
        self.projections = projections
        self.qNorm = qNorm
        self.kNorm = kNorm
        self.rotary = rotary
        self.window = window
        self.localRope = localRope
        self.output = output
        self.postAttentionNorm = postAttentionNorm
        self.mlpNorm = mlpNorm
        self.mlp = mlp
        self.postMLPNorm = postMLPNorm
        self.normPlacement = normPlacement
        self.parallelResidual = parallelResidual
    }

    /// Every norm of the layer.
    public var norms: [NormLayer] { [attentionNorm, qNorm, kNorm, postAttentionNorm, mlpNorm, postMLPNorm].compactMap { $0 } }

    /// Whether the MLP multiplies an activated gate with up (SwiGLU), fused or not.
    public var isGated: Bool { if case .plain = mlp { return false } else { return true } }
    public var isFused: Bool { if case .fused = projections { return true } else { return false } }

    /// The layer's linear layers in forward order.
    public var linears: [LinearLayer] {
        var all: [LinearLayer]
        switch projections {
        case .separate(let q, let k, let v): all = [q, k, v]
        case .fused(let qkv, _): all = [qkv]
        }
        all.append(output)
        switch mlp {
        case .gated(let g, let u, let d): all += [g, u, d]
        case .fusedGated(let gu, let d): all += [gu, d]
        case .plain(let u, let d): all += [u, d]
        }
        return all
    }
}

/// A whole decoder as the forward runs it: embeddings, layers, final norm, head.
public struct DecoderPlan: Sendable {
    public let embed: String
    /// Learned positions table (nil: rotary positions in the layers).
    public let positions: String?
    /// Embedding width → hidden size, and back after the final norm (OPT-350m).
    public let projectIn: LinearLayer?
    public let projectOut: LinearLayer?
    public let layers: [DecoderLayer]
    public let finalNorm: NormLayer?
    public let head: LinearLayer
    /// The position id of a pad token (OPT gives pads offset − 1; others 0).
    public let padPosition: Int32
    /// MLP activation (after `up`, or on `gate` of a gated MLP: silu is SwiGLU, gelu GeGLU).
    public let activation: Activation
    /// Token embeddings are multiplied by this as they are looked up (Gemma's scaled embedding
    /// module: √hidden, exact; the model casts it to its weights' dtype); embeddings given instead of ids (prompt tuning's virtual
    /// tokens) are taken as they are, as transformers takes `inputs_embeds`. nil: not scaled.
    public let embeddingScale: Float?
    /// Attention scores are q·k times this (Gemma 2/3: query_pre_attn_scalar^-½); nil: head_dim^-½.
    public let attentionScale: Float?

    public init(embed: String, positions: String?, projectIn: LinearLayer?, projectOut: LinearLayer?, layers: [DecoderLayer],
                finalNorm: NormLayer?, head: LinearLayer, padPosition: Int32, activation: Activation,
                embeddingScale: Float? = nil, attentionScale: Float? = nil) {
        self.embed = embed
        self.positions = positions
        self.projectIn = projectIn
        self.projectOut = projectOut
        self.layers = layers
        self.finalNorm = finalNorm
        self.head = head
        self.padPosition = padPosition
        self.activation = activation
        self.embeddingScale = embeddingScale
        self.attentionScale = attentionScale
    }

    /// Every linear layer in forward order (the head last).
    public var linears: [LinearLayer] {
        [projectIn].compactMap { $0 } + layers.flatMap(\.linears) + [projectOut].compactMap { $0 } + [head]
    }
}

/// One architecture family: its checkpoint names (bound once, for Hugging Face and GGUF), the
/// tensors and shapes a config implies, and how its layers are built from the shared pieces.
/// Adding a family is one type conforming to this, plus its entry in `Architecture`.
public protocol ArchitectureFamily {
    /// Checkpoint names of every role (see `CheckpointNames`).
    static var names: CheckpointNames { get }
    /// The `architectures` class names and `model_type` values of this family's config.json.
    static var huggingFaceClasses: [String] { get }
    static var modelTypes: [String] { get }
    /// `general.architecture` of the GGUF files llama.cpp writes for this family (nil: none).
    static var ggufArchitecture: String? { get }
    /// The configuration a config.json of this family describes (every error names its field).
    static func config(huggingFace f: HFConfigFields) throws -> ModelConfig
    /// The configuration of a GGUF file of this family from its `<arch>.*` metadata.
    static func config(gguf g: GGUFFile) throws -> ModelConfig
    /// Learned position tables bound the sequence length; rotary models take any length.
    static var hasLearnedPositions: Bool { get }
    /// The tensors a checkpoint of `c` holds, with shapes, in load order (the head last).
    static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])]
    /// The forward's view of the model: each layer built from the shared pieces.
    static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan
    /// transformers' config.json keys for `c` (architecture-specific part).
    static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any]
    /// How the GGUF layout of a tensor differs from the Hugging Face one (llama.cpp's q/k row
    /// permutation, GPT-2's transposed Conv1D weights).
    static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout
}

/// What undoes llama.cpp's storage of a tensor: Llama's q/k row permutation, GPT-2's transposed
/// Conv1D, Gemma's norm gains stored as 1 + w, GPT-NeoX's q/k/v regrouped from per head to
/// all q | all k | all v.
public enum GGUFLayout: Sendable { case asIs, unpermuteQ, unpermuteK, transpose, minusOne, interleaveQKV }

public extension ArchitectureFamily {
    static var ggufArchitecture: String? { nil }
    static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout { .asIs }
    static func config(gguf g: GGUFFile) throws -> ModelConfig {
        throw ModelError(file: g.path, field: "general.architecture", "\(g.architecture ?? "?") GGUF files are not read")
    }
}

/// A family's names: the prefix of its layers, each role's name inside a layer and outside, and
/// older prefixes a checkpoint may use instead.
public struct CheckpointNames: Sendable {
    /// The prefix of every name ("model.decoder.", "transformer.", "").
    let root: String
    /// The layers' container under the root ("layers", "h"); layer N is `root + layers + ".N."`.
    let layers: String
    /// Each role's name inside a layer ("self_attn.q_proj") and outside ("model.embed_tokens", full).
    let perLayer: [(Role, String)]
    let topLevel: [(Role, String)]
    /// Prefixes older checkpoints use instead of `root` ("decoder." for OPT, "" for GPT-2).
    let aliasRoots: [String]

    /// The checkpoint name of a role's tensor.
    public func name(_ role: Role, layer: Int? = nil, _ part: TensorPart = .weight) -> String {
        if let layer, let local = perLayer.first(where: { $0.0 == role })?.1 {
            return "\(root)\(layers).\(layer).\(local).\(part.rawValue)"
        }
        guard let top = topLevel.first(where: { $0.0 == role })?.1 else { preconditionFailure("no \(role) tensor") }
        return "\(top).\(part.rawValue)"
    }

    /// Whether the family has a tensor of `role` inside its layers (or outside when `perLayer` is false).
    public func has(_ role: Role, perLayer inLayer: Bool) -> Bool {
        (inLayer ? perLayer : topLevel).contains { $0.0 == role }
    }

    /// The linear layer of `role` (its bias when `has` it).
    func linear(_ role: Role, layer: Int?, layout: WeightLayout, has: (String) -> Bool) -> LinearLayer {
        let bias = name(role, layer: layer, .bias)
        let local = layer == nil ? name(role).dropLast(".weight".count) : Substring(perLayer.first { $0.0 == role }!.1)
        return LinearLayer(role: role, layer: layer, weight: name(role, layer: layer), bias: has(bias) ? bias : nil,
                           layout: layout, localName: String(local))
    }

    /// Older names of `name` (same tensor under an alias root).
    func aliases(_ name: String) -> [String] {
        guard name.hasPrefix(root), !root.isEmpty else { return [] }
        return aliasRoots.map { $0 + name.dropFirst(root.count) }
    }

    /// (layer, role, part) of a name of this family; PEFT's `base_model.model.` prefix and LoRA's
    /// `.lora_A`/`.lora_B` are looked through (an adapter goes with the layer it adapts).
    public func role(of name: String) -> TensorRole? {
        var n = Substring(name)
        if n.hasPrefix("base_model.model.") { n = n.dropFirst("base_model.model.".count) }
        let part: TensorPart
        if n.hasSuffix(".weight") { part = .weight; n = n.dropLast(".weight".count) }
        else if n.hasSuffix(".bias") { part = .bias; n = n.dropLast(".bias".count) }
        else { return nil }
        if n.hasSuffix(".lora_A") || n.hasSuffix(".lora_B") { n = n.dropLast(".lora_A".count) }
        if let top = topLevel.first(where: { $0.1 == n }) { return TensorRole(layer: nil, role: top.0, part: part) }
        for r in [root] + aliasRoots where n.hasPrefix(r + layers + ".") {
            let rest = n.dropFirst(r.count + layers.count + 1)
            guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { continue }
            let local = rest[rest.index(after: dot)...]
            if let role = perLayer.first(where: { $0.1 == local })?.0 { return TensorRole(layer: layer, role: role, part: part) }
        }
        return nil
    }
}

public extension Architecture {
    /// The family type of this architecture: the one table a new family is added to.
    var family: any ArchitectureFamily.Type {
        switch self {
        case .llama: return Llama.self
        case .mistral: return Mistral.self
        case .opt: return OPT.self
        case .gpt2: return GPT2.self
        case .qwen2: return Qwen2.self
        case .qwen3: return Qwen3.self
        case .phi3: return Phi3.self
        case .gemma: return Gemma.self
        case .gemma2: return Gemma2.self
        case .gemma3: return Gemma3.self
        case .olmo2: return OLMo2.self
        case .gptneox: return GPTNeoX.self
        }
    }

    /// The role of a checkpoint tensor name of any family (nil: not a model tensor, e.g. a prefix).
    static func role(of name: String) -> TensorRole? {
        for a in allCases { if let r = a.family.names.role(of: name) { return r } }
        return nil
    }

    /// The family whose GGUF files carry `general.architecture` = `gguf`.
    init?(gguf: String) {
        guard let a = Self.allCases.first(where: { $0.family.ggufArchitecture == gguf }) else { return nil }
        self = a
    }

    /// The family of a config.json `architectures` class name or `model_type`.
    init?(huggingFaceClass name: String) {
        guard let a = Self.allCases.first(where: { $0.family.huggingFaceClasses.contains(name) }) else { return nil }
        self = a
    }
    init?(modelType: String) {
        guard let a = Self.allCases.first(where: { $0.family.modelTypes.contains(modelType) }) else { return nil }
        self = a
    }
}
