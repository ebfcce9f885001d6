import Foundation
import ZOTuneBackend

/// Mistral: Llama's layer and checkpoint names; `sliding_window` below the context makes every
/// layer attend to that many keys (itself included).
public enum Mistral: ArchitectureFamily {
    public static let names = Llama.names
    public static let huggingFaceClasses = ["MistralForCausalLM"]
    public static let modelTypes = ["mistral"]
    /// llama.cpp writes Mistral as `llama` (with `llama.attention.sliding_window` where it slides):
    /// such files load as the Llama family, whose GGUF reader keeps the window.
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        try Llama.decoderConfig(f, .mistral, biasDefault: false, slides: true)
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] { Llama.tensors(c) }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { Llama.plan(c, names: names, has: has) }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["MistralForCausalLM"]; j["model_type"] = "mistral"
        j["attention_bias"] = nil; j["mlp_bias"] = nil
        j["sliding_window"] = c.slidingWindow.map { $0 as Any } ?? NSNull()
        return j
    }
}
