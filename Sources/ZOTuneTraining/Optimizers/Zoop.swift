import Foundation
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

/// Zoop (shared/papers/zoop.txt; ZO-FAMILY.md §4.10), the linear-layer case of its App. A.5:
/// the noise goes on activations, not weights. Per step, with ξ from the seeded stream (one value
/// per token row and channel of each noisy linear layer's output):
///   forward with y ← xWᵀ + b + εξ at every noisy layer → per-example losses ℓ₊,
///   the same with −εξ → ℓ₋,  α_i = (ℓ₊,i − ℓ₋,i)/2ε (one scalar per example for the whole net);
///   a clean forward in which each noisy layer, right after computing its output, takes
///   Ĝ_W = Σ_i α_i Σ_tokens ξ_i x_iᵀ (one GEMM; Ĝ_b = Σ α ξ), normalises it per tensor and steps:
///   W ← W − η Ĝ/‖Ĝ‖ (SGD), or Adam on Ĝ/‖Ĝ‖ with f32 moments (Zoop-Adam).
/// Later layers of the clean forward still see the earlier layers' old outputs, as in the paper's
/// layer-by-layer recomputation, so the reported loss is L(θ) before the step. Memory beyond an
/// inference forward: the noise of one layer output (activation-sized) and one gradient the size
/// of the largest noisy weight (ledger `workspace`); no per-weight state for SGD.
///
/// Only the noisy linear layers (weights and biases) train: norms and embeddings stay frozen.
/// The update depends on activations, so steps cannot be replayed from the trajectory: the
/// trainer saves the trainable tensors instead and resumes from them.
public struct ZoopOptions: Sendable, Equatable, Codable {
    public enum Update: String, Sendable, Codable, CaseIterable { case sgd, adam }

    public var eps: Float
    /// Noisy linear layers inside each chosen block: "all", or roles (q, k, v, o, qkv, gate, up,
    /// down) or the checkpoint's short names (fc1, c_attn, …): `LinearLayer.answers(to:)`.
    public var layers: [String]
    /// Chosen transformer blocks by index (nil: every block).
    public var blocks: [Int]?
    public var update: Update
    public var beta1: Float
    public var beta2: Float
    public var adamEps: Float

    public init(eps: Float = 1e-3, layers: [String] = ["all"], blocks: [Int]? = nil, update: Update = .sgd,
                beta1: Float = 0.9, beta2: Float = 0.999, adamEps: Float = 1e-8) {
        self.eps = eps
        self.layers = layers
        self.blocks = blocks
        self.update = update
        self.beta1 = beta1
        self.beta2 = beta2
        self.adamEps = adamEps
    }

    enum CodingKeys: String, CodingKey { case eps, layers, blocks, update, beta1, beta2, adamEps = "adam_eps" }

    /// Whether the linear layer carries noise (only layers inside the transformer blocks do).
    public func isNoisy(_ layer: LinearLayer) -> Bool {
        guard let block = layer.layer else { return false }
        if let blocks, !blocks.contains(block) { return false }
        return layers.contains { layer.answers(to: $0) }
    }

    /// The noisy layers' weights and biases of `model`, in load order.
    public func trainableSet(_ model: CausalLM) throws -> TrainableSet {
        var entries: [TrainableSet.Entry] = []
        for name in model.weights.names where model.weights[name].rank == 2 {
            guard let layer = model.linearLayer(name), isNoisy(layer) else { continue }
            entries.append(.init(name: name, tensor: model.weights[name], tensorId: TrainableSet.tensorId(name), decays: true))
            if let bias = layer.bias, let b = model.weights.optional(bias) {
                entries.append(.init(name: bias, tensor: b, tensorId: TrainableSet.tensorId(bias), decays: false))
            }
        }
        guard !entries.isEmpty else {
            throw ModelError(file: "--zoop-layers", field: layers.joined(separator: ","),
                             "no linear layer of the chosen blocks matches (try all, q, k, v, o, gate, up, down, fc1, fc2)")
        }
        return TrainableSet(entries: entries, spec: "zoop")
    }
}

extension ZoopOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "zoop", "Zoop: activation noise, per-sample α, local linear-layer updates (not replayable)",
        flags: [.init("--zoop-layers", "layers", \Self.layers), .init("--zoop-blocks", "blocks", \Self.blocks),
                .init("--zoop-update", "update", \Self.update), .init("--beta1", "beta1", \Self.beta1, only: adam),
                .init("--beta2", "beta2", \Self.beta2, only: adam), .init("--adam-eps", "adam_eps", \Self.adamEps, only: adam)],
        refuses: ["--weight-decay": "the released code has none"], refusesPEFT: "trains its own noisy linear layers of the base",
        defaults: { eps, _ in ZoopOptions(eps: eps) },
        make: { _, _, _ in throw BackendError("zoop perturbs activations: it is built from the model (make(model:)), not from a trainable set") },
        trainableSet: { try $0.trainableSet($1) }, makeOnModel: { try Zoop(model: $1, set: $2, options: $0) })

    public func validate() throws {
        try checkAdam(beta1: beta1, beta2: beta2, adamEps: adamEps, Self.self)
    }

    /// The SGD update has no moments (β₁, β₂, ε_adam stay in the header, unused).
    static let adam: (String, @Sendable (Self) -> Bool) = ("--zoop-update adam", { $0.update == .adam })
}

extension OptimizerKind { public static let zoop = ZoopOptions.spec.kind }
extension OptimizerConfig { public static func zoop(_ o: ZoopOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class Zoop: ZOOptimizer, ForwardHook, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZoopOptions
    let model: CausalLM
    let backend: any Backend

    struct Layer {
        let weight: Int          // index into set.entries
        let bias: Int?
        let noiseId: UInt32
        let width: Int           // output channels
    }
    /// Noisy layers by weight name.
    let layers: [String: Layer]
    let widest: Int
    /// Ĝ of one weight (f32, the largest noisy weight) and of one bias.
    let grad: Tensor
    let biasGrad: Tensor
    /// Zoop-Adam's moments, one pair per trainable tensor.
    let moments: [(m: Tensor, v: Tensor)]

    enum Mode { case off, noise(Float), update }
    // The step in progress (the forwards call back into the hook).
    var mode = Mode.off
    var seed: UInt64 = 0
    var lr: Float = 0
    var adamStep = 0
    var owners: [[Int]] = []
    var alpha: [Float] = []
    var forwardIndex = 0
    /// Token rows of the pass before the current forward, and after it.
    var rowBase = 0
    var passRows = 0
    var rowsNow = 0
    var noise: Tensor?
    var rowScales: Tensor?
    var ones: Tensor?
    var hookError: Error?
    /// Sees each layer's Ĝ (weight or bias name, unnormalised) before the step uses it: tests and diagnostics.
    var onEstimate: ((String, Tensor) -> Void)?

    public init(model: CausalLM, set: TrainableSet, options: ZoopOptions) throws {
        guard options.eps > 0 else { throw BackendError("zoop: ε must be positive") }
        self.model = model
        self.set = set
        self.options = options
        backend = model.backend
        var layers: [String: Layer] = [:]
        for (i, e) in set.entries.enumerated() where e.tensor.rank == 2 {
            let linear = model.linearLayer(e.name)
            layers[e.name] = Layer(weight: i, bias: linear?.bias.flatMap { b in set.entries.firstIndex { $0.name == b } }, noiseId: e.tensorId,
                                   width: linear?.features(e.tensor).out ?? e.tensor.shape[0])
        }
        self.layers = layers
        let widest = layers.values.map(\.width).max() ?? 1
        self.widest = widest
        let be = model.backend
        grad = try be.allocate([layers.values.map { set.entries[$0.weight].tensor.count }.max() ?? 1], tag: .workspace)
        biasGrad = try be.allocate([widest], tag: .workspace)
        moments = options.update == .adam
            ? try set.entries.map { (try be.allocate([$0.tensor.count], tag: .optimizer), try be.allocate([$0.tensor.count], tag: .optimizer)) }
            : []
    }

    public var config: OptimizerConfig { OptimizerConfig(options) }
    /// g: the mean of α over the batch, i.e. (L₊ − L₋)/2ε of the mean loss.
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 3 }
    /// One update pass over the trainable tensors (no z is regenerated over θ).
    public var passesPerStep: Double { 1 }
    public var stateBytes: Int { moments.reduce(0) { $0 + $1.m.bytes + $1.v.bytes } }
    public var replayable: Bool { false }
    public var stateTensors: [(String, Tensor)] {
        zip(set.entries, moments).flatMap { e, s in [(e.name + ".zoop_adam_m", s.m), (e.name + ".zoop_adam_v", s.v)] }
    }
    public func resetState() { fillState(moments.flatMap { [$0.m, $0.v] }, 0, backend: backend) }

    public func replay(_ records: [ZORecord]) {
        precondition(records.isEmpty, "zoop steps cannot be replayed: they depend on activations")
    }

    /// One scoring of the batch in `mode`; each pass sees the same forwards in the same order.
    func pass(_ mode: Mode, _ score: () throws -> BatchScore) throws -> BatchScore {
        self.mode = mode
        (forwardIndex, passRows, hookError) = (0, 0, nil)
        let out = try score()
        if let hookError { throw hookError }
        return out
    }

    public func step(_ c: StepContext) throws -> StepOutcome {
        seed = stepSeed(runSeed: c.runSeed, step: c.step, direction: 0)
        // After any hook already installed (adapters), so the noise lands on the adapted output.
        let installed = model.hook
        model.hook = installed.map { ForwardHookChain([$0, self]) } ?? self
        defer { model.hook = installed; mode = .off; noise = nil; rowScales = nil; ones = nil }
        let plus = try pass(.noise(options.eps), c.scoreSamples)
        let minus = try pass(.noise(-options.eps), c.scoreSamples)
        guard plus.forwardOwners == minus.forwardOwners, plus.forwardOwners.count == 1 else {
            throw BackendError("zoop needs each minibatch scored in one forward (got \(plus.forwardOwners.count)): every example of a task must take the same scoring path")
        }
        for l in [plus.loss, minus.loss] where !l.isFinite { throw NonFiniteLoss(step: c.step, value: l) }
        let twoEps = 2 * Double(options.eps)
        alpha = zip(plus.sampleLosses, minus.sampleLosses).map { Float(($0 - $1) / twoEps) }
        guard alpha.allSatisfy(\.isFinite) else { throw NonFiniteLoss(step: c.step, value: .nan) }
        owners = plus.forwardOwners
        lr = c.lr
        adamStep = c.step + 1
        let clean = try pass(.update, c.scoreSamples)
        let g = Float((plus.loss - minus.loss) / twoEps)
        return StepOutcome(records: [ZORecord(step: UInt32(c.step), direction: 0, seed: seed, lr: c.lr, values: [g])], loss: clean.loss)
    }

    // MARK: ForwardHook

    public func forwardBegins(_ batch: TokenBatch) {
        if case .off = mode { return }
        do {
            rowsNow = batch.tokenCount
            (rowBase, passRows) = (passRows, passRows + rowsNow)
            if (noise?.count ?? 0) < rowsNow * widest { noise = try backend.allocate([rowsNow * widest], tag: .activations) }
            if case .update = mode {
                guard forwardIndex < owners.count, owners[forwardIndex].count == batch.batch else {
                    throw BackendError("zoop: the clean forward's batch differs from the noisy ones")
                }
                var scales = [Float](repeating: 0, count: rowsNow)
                for b in 0..<batch.batch {
                    let a = alpha[owners[forwardIndex][b]]
                    for t in 0..<batch.length where batch.mask[b * batch.length + t] != 0 { scales[b * batch.length + t] = a }
                }
                rowScales = try backend.tensor(scales, shape: [rowsNow], tag: .activations)
                ones = try backend.tensor([Float](repeating: 1, count: rowsNow), shape: [1, rowsNow], tag: .activations)
            }
            forwardIndex += 1
        } catch {
            hookError = hookError ?? error
        }
    }

    public func linearDone(_ linear: LinearLayer, input: Tensor, output: Tensor) {
        let weight = linear.weight
        guard let layer = layers[weight], let noise, hookError == nil else { return }
        let rows = output.count / layer.width
        precondition(rows == rowsNow, "zoop: \(weight) saw \(rows) rows in a forward of \(rowsNow)")
        let xi = noise.flatSlice(0, rows * layer.width).reshaped([rows, layer.width])
        // Row r of this forward is row rowBase + r of the pass: the same ξ in all three forwards.
        let first = rowBase * layer.width
        switch mode {
        case .off: return
        case .noise(let scale):
            backend.fillNormal(xi, first: first, seed: seed, tensorId: layer.noiseId, stream: ZT_STREAM_ACTIVATIONS, scale: scale)
            backend.add(output, output, xi)
        case .update:
            guard let rowScales, let ones else { return }
            backend.fillNormal(xi, first: first, seed: seed, tensorId: layer.noiseId, stream: ZT_STREAM_ACTIVATIONS, scale: 1)
            backend.scaleRows(xi, by: rowScales)
            let w = set.entries[layer.weight].tensor
            let g = grad.flatSlice(0, w.count).reshaped(w.shape)
            linear.product(into: g, out: xi, in: input, backend: backend)   // Σ_rows ξ ⊗ x, as W is stored
            apply(g, to: layer.weight)
            if let b = layer.bias {
                let gb = biasGrad.flatSlice(0, layer.width).reshaped([1, layer.width])
                backend.matmul(gb, ones, transposeA: false, xi, transposeB: false, alpha: 1, beta: 0)
                apply(gb, to: b)
            }
        }
    }

    /// θ_k ← θ_k − η·g/‖g‖ (SGD) or Adam on g/‖g‖. A zero (or non-finite) estimate leaves θ_k.
    func apply(_ g: Tensor, to k: Int) {
        let x = set.entries[k].tensor
        onEstimate?(set.entries[k].name, g)
        let norm = backend.sumSquares(g).squareRoot()
        guard norm > 0 && norm.isFinite else { return }
        switch options.update {
        case .sgd:
            backend.addScaled(x, g, alpha: Float(-Double(lr) / norm))
        case .adam:
            backend.scale(g, g, by: Float(1 / norm))
            var s = ZOUpdateScalars()
            let t = Float(adamStep)
            s.lr = lr / (1 - pow(options.beta1, t))
            s.beta1 = options.beta1
            s.beta2 = options.beta2
            s.adamEps = options.adamEps
            s.bc2Sqrt = (1 - pow(options.beta2, t)).squareRoot()
            backend.adamDirection(x, m: moments[k].m, v: moments[k].v, direction: g, scalars: s)
        }
    }
}
