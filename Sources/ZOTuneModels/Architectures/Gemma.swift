import Foundation
import ZOTuneBackend

/// Gemma (1): Llama's layer with RMSNorm gains of 1 + w, a tanh-GELU gated MLP (GeGLU), token
/// embeddings scaled by √hidden (cast to the weights' dtype, as transformers' normalizer: see
/// `CausalLM.embeddingScale`), head_dim independent of
/// hidden/heads, and the head always tied to the embeddings.
public enum Gemma: ArchitectureFamily {
    public static let names = Llama.names
    public static let huggingFaceClasses = ["GemmaForCausalLM"]
    public static let modelTypes = ["gemma"]
    public static let ggufArchitecture: String? = "gemma"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        var c = try Llama.decoderConfig(f, .gemma, biasDefault: false, gatedActivation: try gemmaActivation(f))
        c.tieWordEmbeddings = try f.bool("tie_word_embeddings", default: true)
        c.mlpBias = false
        return c
    }

    /// Gemma's activation: `hidden_activation` (Gemma 2/3 configs) or `hidden_act` (Gemma 1), tanh-GELU.
    static func gemmaActivation(_ f: HFConfigFields) throws -> Activation {
        let key = f.has("hidden_activation") ? "hidden_activation" : "hidden_act"
        let act = try f.activation(key, default: "gelu_pytorch_tanh")
        guard act == .geluTanh || act == .geluErf else { throw f.error(key, "Gemma's gated MLP is supported with gelu only") }
        return act
    }

    /// llama.cpp's gemma: no rope.freq_base (10000), norms stored as 1 + w (undone at load).
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .gemma, activation: .geluTanh)
        c.mlpBias = false
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        Llama.tensors(c, biased: c.attentionBias ? [.q, .k, .v, .o] : [])
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        Llama.plan(c, names: names, has: has, unitOffsetNorms: true, embeddingScale: Float(Double(c.hiddenSize).squareRoot()))
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["GemmaForCausalLM"]; j["model_type"] = "gemma"
        j["hidden_act"] = c.activation == .geluErf ? "gelu" : "gelu_pytorch_tanh"
        j["tie_word_embeddings"] = c.tieWordEmbeddings
        j["mlp_bias"] = nil
        return j
    }

    /// llama.cpp stores every Gemma norm gain as 1 + w.
    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout {
        [.attnNorm, .mlpNorm, .finalNorm, .qNorm, .kNorm, .postAttnNorm, .postMLPNorm].contains(role) && part == .weight ? .minusOne : .asIs
    }
}
