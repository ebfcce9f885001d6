import ZOTuneBackend

/// Qwen2 and Qwen2.5: Llama's layer with biases on q, k and v (none on o or the MLP), tied or
/// untied embeddings; with `use_sliding_window`, the layers `layer_types` names slide.
public enum Qwen2: ArchitectureFamily {
    public static let names = Llama.names
    public static let huggingFaceClasses = ["Qwen2ForCausalLM"]
    public static let modelTypes = ["qwen2"]
    public static let ggufArchitecture: String? = "qwen2"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        var c = try Llama.decoderConfig(f, .qwen2, biasDefault: true, slides: true, windowFlag: "use_sliding_window")
        c.attentionBias = true   // the family's tensors: q/k/v biased, o and the MLP never
        c.mlpBias = false
        return c
    }

    /// llama.cpp's qwen2: Llama's metadata names, NEOX RoPE (no q/k permutation), q/k/v biases.
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .qwen2)
        c.attentionBias = true
        c.mlpBias = false
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        Llama.tensors(c, biased: [.q, .k, .v])
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { Llama.plan(c, names: names, has: has) }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Qwen2ForCausalLM"]; j["model_type"] = "qwen2"
        j["attention_bias"] = nil; j["mlp_bias"] = nil
        j["use_sliding_window"] = c.slidingWindow != nil
        return j
    }
}
