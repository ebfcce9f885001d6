import ZOTuneBackend

/// Qwen3: Llama's layer with an explicit head_dim (128 by default, not hidden/heads), per-head
/// RMSNorm of q and k (over head_dim, before RoPE), biases on q/k/v/o only with `attention_bias`.
public enum Qwen3: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: Llama.names.root, layers: Llama.names.layers,
        perLayer: Llama.names.perLayer + [(.qNorm, "self_attn.q_norm"), (.kNorm, "self_attn.k_norm")],
        topLevel: Llama.names.topLevel, aliasRoots: [])
    public static let huggingFaceClasses = ["Qwen3ForCausalLM"]
    public static let modelTypes = ["qwen3"]
    public static let ggufArchitecture: String? = "qwen3"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        var c = try Llama.decoderConfig(f, .qwen3, biasDefault: false, headDimDefault: 128, slides: true, windowFlag: "use_sliding_window")
        c.mlpBias = false
        return c
    }

    /// llama.cpp's qwen3 writes key_length/value_length (head_dim) and attn_q_norm/attn_k_norm; NEOX RoPE.
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .qwen3)
        c.mlpBias = false
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        Llama.tensors(c, biased: c.attentionBias ? [.q, .k, .v, .o] : [], qkNorm: true)
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { Llama.plan(c, names: names, has: has) }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Qwen3ForCausalLM"]; j["model_type"] = "qwen3"
        j["mlp_bias"] = nil
        j["use_sliding_window"] = c.slidingWindow != nil
        return j
    }
}
