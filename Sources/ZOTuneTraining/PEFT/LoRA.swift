import Foundation
import ZOTuneBackend
import ZOTuneModels

/// LoRA adapters on chosen linear layers (ZO-FAMILY.md §5.1), applied through the model's
/// ForwardHook: y = x·Wᵀ + b + (α/r)·(x·Aᵀ)·Bᵀ with A (r × in) ~ U(±1/√in) (kaiming_uniform with
/// a = √5, as PEFT and MeZO initialise it) and B (out × r) = 0, so an adapted model starts as the
/// base. Shapes come from each weight, so k and v are right under GQA. A and B are f32 whatever the
/// base's dtype and form the trainable set under PEFT's names
/// (`base_model.model.<layer>.lora_A.weight`), which also key their z streams.
public struct LoRAOptions: Sendable, Equatable, Codable {
    public var rank: Int
    public var alpha: Float
    /// Adapted linear layers by role (q, k, v, o, qkv, gate, up, down), the checkpoint's own short
    /// name (fc1, c_attn, …) or full name (`LinearLayer.answers(to:)`).
    public var targets: [String]
    /// Seeds A's initialisation (with each adapter's name).
    public var seed: UInt64

    public init(rank: Int = 8, alpha: Float = 16, targets: [String] = ["q", "v"], seed: UInt64 = 0) {
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.seed = seed
    }

    public var scaling: Float { alpha / Float(rank) }
}

public final class LoRA: PEFTAdapter, @unchecked Sendable {
    public let options: LoRAOptions
    public let set: TrainableSet
    public var config: PEFTConfig { .lora(options) }
    let backend: any Backend

    struct Adapter {
        let a: Tensor       // (r, in)
        let b: Tensor       // (out, r)
        let aName: String
        let layer: LinearLayer
    }
    /// By the adapted weight's name.
    let adapters: [String: Adapter]
    /// x·Aᵀ of one layer, (tokens, r), sized per forward.
    var low: Tensor?

    public init(model: CausalLM, options: LoRAOptions) throws {
        guard options.rank >= 1, options.alpha > 0 else { throw BackendError("LoRA: rank must be ≥ 1 and α > 0 (got \(options.rank), \(options.alpha))") }
        self.options = options
        backend = model.backend
        var adapters: [String: Adapter] = [:]
        var entries: [TrainableSet.Entry] = []
        for name in model.weights.names where model.weights[name].rank == 2 {
            // Linear layers inside the transformer layers; a target is a role (q, v, …) or a layer's
            // full name (what a loaded PEFT adapter lists).
            guard let layer = model.linearLayer(name), layer.layer != nil,
                  options.targets.contains(where: { layer.answers(to: $0) }) else { continue }
            let (out, inDim) = layer.features(model.weights[name])
            let stem = "base_model.model." + layer.module
            let aName = stem + ".lora_A.weight", bName = stem + ".lora_B.weight"
            let a = try backend.allocate([options.rank, inDim], tag: .trainableState)
            let b = try backend.allocate([out, options.rank], tag: .trainableState)
            adapters[name] = Adapter(a: a, b: b, aName: aName, layer: layer)
            entries.append(.init(name: aName, tensor: a, tensorId: TrainableSet.tensorId(aName), decays: true))
            entries.append(.init(name: bName, tensor: b, tensorId: TrainableSet.tensorId(bName), decays: true))
        }
        guard !entries.isEmpty else {
            throw ModelError(file: "--lora-targets", field: options.targets.joined(separator: ","), "no linear layer matches (try q, k, v, o, gate, up, down, fc1, fc2)")
        }
        self.adapters = adapters
        set = TrainableSet(entries: entries, spec: "lora")
        try reset()
    }

    /// A ~ U(±1/√in) from (seed, A's name), B = 0.
    public func reset() throws {
        for ad in adapters.values {
            let a = uniform(count: ad.a.count, bound: 1 / Float(ad.a.shape[1]).squareRoot(), seed: options.seed, name: ad.aName)
            a.withUnsafeBytes { backend.copy(ad.a, fromHost: $0) }
            [Float](repeating: 0, count: ad.b.count).withUnsafeBytes { backend.copy(ad.b, fromHost: $0) }
        }
    }

    /// The adapted layers (weight names without ".weight"), sorted.
    public var adaptedLayers: [String] { adapters.values.map(\.layer.module).sorted() }

    public func peftConfig(model: CausalLM) -> [String: Any] {
        // PEFT matches a list of module names by suffix; when a name also fits layers that are not
        // adapted (GPT-2's attn.c_proj and mlp.c_proj), the exact paths go in as one regex.
        let adapted = Set(adaptedLayers)
        let leaves = Set(adapted.map { String($0.split(separator: ".").last!) })
        let allLinear = model.plan.linears.map(\.module)
        let ambiguous = allLinear.contains { !adapted.contains($0) && leaves.contains(String($0.split(separator: ".").last!)) }
        let targets: Any = ambiguous
            ? "^(" + adaptedLayers.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|") + ")$"
            : leaves.sorted()
        return ["peft_type": "LORA", "task_type": "CAUSAL_LM", "r": options.rank, "lora_alpha": options.alpha,
                "target_modules": targets, "lora_dropout": 0.0, "bias": "none",
                "fan_in_fan_out": adapters.values.contains { $0.layer.layout == .inOut }, "init_lora_weights": true, "inference_mode": true,
                "use_rslora": false, "use_dora": false]
    }

    /// Folds the adapters into the base weights, W ← W + (α/r)·B·A (stored (in, out): + (α/r)·Aᵀ·Bᵀ), one
    /// f32 product at a time in a scratch buffer, added in W's storage dtype: what a merged export
    /// writes. The adapters are left as they are (detach the hook before using the merged model).
    public func merge(into model: CausalLM) throws {
        let largest = adapters.keys.map { model.weights[$0].count }.max() ?? 0
        let delta = try backend.allocate([largest], tag: .scratch)
        for (name, ad) in adapters {
            let w = model.weights[name]
            let d = delta.flatSlice(0, w.count).reshaped(w.shape)
            ad.layer.product(into: d, out: ad.b, outTransposed: true, in: ad.a, alpha: options.scaling, backend: backend)
            backend.addScaled(w, d, alpha: 1)
        }
    }

    public func forwardBegins(_ batch: TokenBatch) {
        let need = batch.tokenCount * options.rank
        if (low?.count ?? 0) < need { low = try? backend.allocate([need], tag: .activations) }
    }

    public func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {
        guard let ad = adapters[layer.weight], let low else { return }
        let rows = input.count / input.shape.last!
        let t = low.flatSlice(0, rows * options.rank).reshaped([rows, options.rank])
        let x = input.reshaped([rows, input.shape.last!])
        backend.matmul(t, x, transposeA: false, ad.a, transposeB: true, alpha: 1, beta: 0)
        backend.matmul(output.reshaped([rows, output.count / rows]), t, transposeA: false, ad.b, transposeB: true,
                       alpha: options.scaling, beta: 1)
    }
}

/// U(−bound, bound) draws from (seed, name) on the host: reproducible adapter initialisation.
func uniform(count: Int, bound: Float, seed: UInt64, name: String) -> [Float] {
    let key = seed ^ UInt64(TrainableSet.tensorId(name)) << 17
    return (0..<count).map { i in
        let u = Double(stepSeed(runSeed: key, step: i, direction: 3) >> 11) / 9_007_199_254_740_992.0
        return Float((2 * u - 1) * Double(bound))
    }
}
