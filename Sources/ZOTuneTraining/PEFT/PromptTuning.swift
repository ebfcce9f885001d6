import Foundation
import ZOTuneBackend
import ZOTuneModels

/// Prompt tuning (ZO-FAMILY.md §5.3, ZO-Bench): P trainable input embeddings in front of every
/// sequence, before its BOS, initialised as copies of the embedding rows of P random vocabulary
/// tokens (ZO-Bench's `--prompt_init_by_real_tokens`), f32. Real tokens take positions P, P+1, ….
/// Because the virtual tokens come first and attend only to each other, their keys and values are
/// the same for every sequence: each forward runs them once, as one sequence of P, and puts the
/// result in front of every row (instead of P more rows per sequence). HF PEFT's name and layout:
/// `prompt_embeddings` (P, embedding width).
public final class PromptTuning: PEFTAdapter, @unchecked Sendable {
    public let options: PromptOptions
    public let set: TrainableSet
    public var config: PEFTConfig { .prompt(options) }
    let model: CausalLM
    let embeddings: Tensor
    public let initialTokens: [Int32]

    public init(model: CausalLM, options: PromptOptions) throws {
        guard options.tokens >= 1 else { throw BackendError("prompt tuning: --prompt-tokens must be at least 1") }
        self.options = options
        self.model = model
        let width = model.weights[model.embeddingTableName].shape[1]
        embeddings = try model.backend.allocate([options.tokens, width], tag: .trainableState)
        initialTokens = randomTokens(options.tokens, vocab: model.config.vocabSize, seed: options.seed, salt: 0x9B0B_7000)
        let name = "prompt_embeddings"
        set = TrainableSet(entries: [.init(name: name, tensor: embeddings, tensorId: TrainableSet.tensorId(name), decays: true)],
                           spec: "prompt")
        try reset()
    }

    public func reset() throws {
        let ids = try model.backend.tensor(initialTokens, shape: [initialTokens.count], tag: .scratch)
        try model.backend.embedding(embeddings, table: model.weights[model.embeddingTableName], ids: ids)
        // The tokens' input embeddings as the model sees them (Gemma scales its lookups by √hidden;
        // given embeddings are not scaled again), as peft's init from the embedding module.
        if let s = model.embeddingScale { model.backend.scale(embeddings, embeddings, by: s) }
    }

    public var virtualPositions: Int { options.tokens }
    public func attentionPrefix(_ model: CausalLM) throws -> AttentionPrefix? { try model.keyValues(ofEmbeddings: embeddings) }
    public func forwardBegins(_ batch: TokenBatch) {}
    public func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {}

    public func peftConfig(model: CausalLM) -> [String: Any] {
        let c = model.config
        return ["peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": options.tokens,
                "token_dim": embeddings.shape[1], "num_attention_heads": c.numHeads, "num_layers": c.numLayers,
                "num_transformer_submodules": 1, "prompt_tuning_init": "RANDOM", "inference_mode": true]
    }
}
