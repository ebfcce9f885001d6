import Foundation
import ZOTuneBackend
import ZOTuneModels

/// Prefix tuning (ZO-FAMILY.md §5.2): P trainable key and value vectors per layer in front of
/// every sequence, initialised from the model's own cache for P random vocabulary tokens run as
/// one sequence (MeZO's `init_by_real_act`; keys after RoPE). One f32 tensor in HF PEFT's layout,
/// `prompt_embeddings` (P, layers·2·kvDim): row p holds layer 0's key, layer 0's value, layer 1's
/// key, …, each (kvHeads, headDim). Real tokens take positions P, P+1, … (PEFT's convention; MeZO
/// leaves them at 0…, overlapping the prefix): with it the initial prefix made from tokens t
/// makes the model on x equal the plain model on [t, x].
public final class PrefixTuning: PEFTAdapter, @unchecked Sendable {
    public let options: PrefixOptions
    public let set: TrainableSet
    public var config: PEFTConfig { .prefix(options) }
    let model: CausalLM
    let table: Tensor
    let prefix: AttentionPrefix
    /// The token ids the prefix was initialised from.
    public let initialTokens: [Int32]

    public init(model: CausalLM, options: PrefixOptions) throws {
        guard options.tokens >= 1 else { throw BackendError("prefix tuning: --prefix-tokens must be at least 1") }
        self.options = options
        self.model = model
        let c = model.config, p = options.tokens
        let kvd = c.numKVHeads * c.headDim, stride = 2 * c.numLayers * kvd
        let t = try model.backend.allocate([p, stride], tag: .trainableState)
        table = t
        prefix = AttentionPrefix(length: p, keys: (0..<c.numLayers).map { t.flatSlice(2 * $0 * kvd, p * stride - 2 * $0 * kvd) },
                                 values: (0..<c.numLayers).map { t.flatSlice((2 * $0 + 1) * kvd, p * stride - (2 * $0 + 1) * kvd) },
                                 stride: stride)
        initialTokens = randomTokens(p, vocab: c.vocabSize, seed: options.seed, salt: 0x9EF1_0000)
        let name = "prompt_embeddings"
        set = TrainableSet(entries: [.init(name: name, tensor: table, tensorId: TrainableSet.tensorId(name), decays: true)], spec: "prefix")
        try reset()
    }

    public func reset() throws {
        let kv = try model.keyValues(ofTokens: initialTokens)
        let be = model.backend, kvd = kv.stride
        for l in 0..<model.config.numLayers {
            be.copy2D(prefix.keys[l], ldd: prefix.stride, from: kv.keys[l], lds: kvd, rows: prefix.length, cols: kvd)
            be.copy2D(prefix.values[l], ldd: prefix.stride, from: kv.values[l], lds: kvd, rows: prefix.length, cols: kvd)
        }
    }

    public var virtualPositions: Int { options.tokens }
    public func attentionPrefix(_ model: CausalLM) throws -> AttentionPrefix? { prefix }
    public func forwardBegins(_ batch: TokenBatch) {}
    public func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {}

    public func peftConfig(model: CausalLM) -> [String: Any] {
        let c = model.config
        // Under GQA the prefix is kvHeads wide, as PEFT sizes it (token_dim = kvHeads·headDim).
        return ["peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": options.tokens,
                "token_dim": c.numKVHeads * c.headDim, "num_attention_heads": c.numKVHeads, "num_layers": c.numLayers,
                "num_transformer_submodules": 1, "encoder_hidden_size": c.hiddenSize, "prefix_projection": false,
                "inference_mode": true]
    }
}
