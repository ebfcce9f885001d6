import ZOTuneBackend

/// Qwen2 and Qwen2.5: Llama's layer with biases on q, k and v (none on o or the MLP), tied or
/// untied embeddings. Sliding-window attention (`use_sliding_window`) is refused at load.
public enum Qwen2: ArchitectureFamily {
    public static let names = Llama.names
    public static let hasLearnedPositions = false

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        Llama.tensors(c, biased: [.q, .k, .v])
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { Llama.plan(c, has: has) }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Qwen2ForCausalLM"]; j["model_type"] = "qwen2"
        j["attention_bias"] = nil; j["mlp_bias"] = nil
        j["use_sliding_window"] = false
        return j
    }
}
