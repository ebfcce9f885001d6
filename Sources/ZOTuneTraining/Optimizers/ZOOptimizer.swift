import Foundation
import ZOTuneBackend

/// A zeroth-order optimizer over a trainable set (docs/optimizers.md). One step probes the loss
/// with forwards only, then updates θ (and its state) in fused passes that regenerate z; the
/// scalars it derives from the losses go into a `ZORecord`, so `replay` redoes the same passes
/// with the same roundings without any forward: resume and `zotune replay` are bit-identical to
/// the uninterrupted run on the same device.
public protocol ZOOptimizer: AnyObject {
    /// Name and hyper-parameters, as stored in the run header.
    var config: OptimizerConfig { get }
    var set: TrainableSet { get }
    /// Names of the values each record carries, in order (the first is always "g").
    var recordFields: [String] { get }
    /// Forward passes of an ordinary step.
    var forwardsPerStep: Int { get }
    /// Forward passes per step on average, counting periodic extras (DiZO's searches).
    var meanForwardsPerStep: Double { get }
    /// Passes over θ per step that regenerate z (probes, restores, updates, candidate moves).
    var passesPerStep: Double { get }
    /// Bytes of optimizer state (f32, under the ledger's `optimizer` tag).
    var stateBytes: Int { get }
    /// GEMM FLOPs per step beyond the forwards (Newton–Schulz of the matrix optimizers; 0 for the others).
    var matrixFlopsPerStep: Double { get }

    /// Step `context.step`, evaluating what the context offers: the step's minibatch loss at the
    /// current θ (every optimizer), search minibatches (DiZO), per-example losses (Zoop).
    func step(_ context: StepContext) throws -> StepOutcome
    /// Redoes recorded steps (in order) without forwards.
    func replay(_ records: [ZORecord])
    /// State back to its initial value (the trainer reloads the base weights and replays).
    func resetState()
    /// Whether `replay` can rebuild θ from the records alone (false for Zoop, whose update depends
    /// on activations): the trainer then saves the trainable weights and resumes from them.
    var replayable: Bool { get }
    /// Optimizer state saved with the weights of a run that cannot replay (name, f32 tensor).
    var stateTensors: [(String, Tensor)] { get }
}

extension ZOOptimizer {
    public var matrixFlopsPerStep: Double { 0 }
    public var meanForwardsPerStep: Double { Double(forwardsPerStep) }
    public var replayable: Bool { true }
    public var stateTensors: [(String, Tensor)] { [] }
}

/// The MeZO family's shared base: one direction per step, θ ± ε·(probe direction) → ℓ±,
/// g = (ℓ₊ − ℓ₋)/2ε recorded alone, then `update`, one fused pass that restores θ from θ − εz and
/// steps (replay: redoes the two probe moves first, for training's roundings). Such an optimizer
/// is its options, its state and `update`; the step, replay, config and state accounting come
/// from here. The step loss is (ℓ₊ + ℓ₋)/2.
public protocol TwoSidedOptimizer: ZOOptimizer {
    associatedtype Options: ZOOptimizerOptions
    var options: Options { get }
    var backend: any Backend { get }
    /// f32 state, zero at the start (stateBytes, resetState).
    var buffers: [Tensor] { get }
    /// θ += scale·direction(seed) on every tensor; the default is z on every weight.
    func probe(seed: UInt64, scale: Float)
    /// Restore and update for record `r`; with `replay` the probes' moves +ε, −2ε first.
    func update(_ r: ZORecord, replay: Bool)
}

extension TwoSidedOptimizer {
    public var config: OptimizerConfig { OptimizerConfig(options) }
    public var recordFields: [String] { ["g"] }
    public var forwardsPerStep: Int { 2 }
    public var passesPerStep: Double { 3 }
    public var buffers: [Tensor] { [] }
    public var stateBytes: Int { buffers.reduce(0) { $0 + $1.bytes } }
    public func resetState() { fillState(buffers, 0, backend: backend) }
    public func probe(seed: UInt64, scale: Float) { set.perturb(backend, seed: seed, scale: scale) }

    public func step(_ c: StepContext) throws -> StepOutcome {
        let eps = options.eps
        let seed = stepSeed(runSeed: c.runSeed, step: c.step, direction: 0)
        let p = try twoSidedProbe(step: c.step, eps: eps, move: { probe(seed: seed, scale: $0) }, loss: c.loss)
        let r = ZORecord(step: UInt32(c.step), direction: 0, seed: seed, lr: c.lr, values: [projectedGradient(p, eps: eps)])
        update(r, replay: false)
        return StepOutcome(records: [r], loss: (p.plus + p.minus) / 2)
    }

    public func replay(_ records: [ZORecord]) { for r in records { update(r, replay: true) } }
}

/// The scalars of a fused update: the probe replay moves (a1, a2) when replaying, the restore ε.
func updateScalars(eps: Float, replay: Bool) -> ZOUpdateScalars {
    var s = ZOUpdateScalars()
    if replay { (s.a1, s.a2) = (eps, -2 * eps) }
    s.restore = eps
    return s
}

/// What a step may evaluate, from the trainer: the step's minibatch, fresh search minibatches
/// from a second deterministic stream of the training set, and per-example losses.
public struct StepContext {
    public let step: Int
    public let runSeed: UInt64
    public let lr: Float
    /// Mean loss of the step's minibatch at the current θ.
    public let loss: () throws -> Double
    /// Mean loss at the current θ of search minibatch j of the run (j counts every draw since
    /// step 0): never the step's batch, and a function of j alone, so runs stay deterministic.
    public let searchLoss: (Int) throws -> Double
    /// The step's minibatch scored at the current θ with per-example losses and the example of
    /// each sequence row of each forward, each scoring path in one forward (Zoop pairs its
    /// forwards row for row).
    public let scoreSamples: () throws -> BatchScore
    /// (ℓ₊ₖ, ℓ₋ₖ), k = 1…q, of the step's minibatch under the batched low-rank probe with this
    /// seed (LowRankProbe: the 2q members in one forward, θ not written).
    public let lowRankProbe: (LowRankProbe, UInt64) throws -> [(plus: Double, minus: Double)]

    public init(step: Int, runSeed: UInt64, lr: Float, loss: @escaping () throws -> Double,
                searchLoss: @escaping (Int) throws -> Double = { _ in throw StepContext.unavailable("search minibatches") },
                scoreSamples: @escaping () throws -> BatchScore = { throw StepContext.unavailable("per-example losses") },
                lowRankProbe: @escaping (LowRankProbe, UInt64) throws -> [(plus: Double, minus: Double)] = { _, _ in
                    throw StepContext.unavailable("batched low-rank probes")
                }) {
        self.step = step
        self.runSeed = runSeed
        self.lr = lr
        self.loss = loss
        self.searchLoss = searchLoss
        self.scoreSamples = scoreSamples
        self.lowRankProbe = lowRankProbe
    }

    public static func unavailable(_ what: String) -> Error { BackendError("this step context provides no \(what)") }
}

/// What one step produced: its records (one per direction, plus DiZO's projection ratios) and
/// the loss it reports.
public struct StepOutcome: Sendable {
    public let records: [ZORecord]
    public let loss: Double

    public init(records: [ZORecord], loss: Double) {
        self.records = records
        self.loss = loss
    }

    /// g of the step's last direction (for the progress line and metrics).
    public var projectedGrad: Float { records.last { $0.kind == .direction }?.projectedGrad ?? 0 }
}

/// One direction of one step, as stored in the trajectory: enough to redo the update exactly.
public struct ZORecord: Sendable, Equatable {
    /// What a record holds (the u16 after the direction in the file).
    public enum Kind: UInt16, Sendable {
        /// A step's direction: seed, lr and the optimizer's `recordFields`.
        case direction = 0
        /// DiZO: the ratio r of projected tensor `direction` set by the search after `step`
        /// (values[0]; the other fields 0).
        case projection = 1
    }

    public var step: UInt32
    public var direction: UInt16
    public var kind: Kind
    /// Block-wise ZO: the block whose tensors the record moves (0 otherwise).
    public var block: UInt32
    public var seed: UInt64
    public var lr: Float
    /// The optimizer's declared fields (`recordFields`), `values[0]` being g.
    public var values: [Float]

    public init(step: UInt32, direction: UInt16, kind: Kind = .direction, block: UInt32 = 0, seed: UInt64, lr: Float, values: [Float]) {
        self.step = step
        self.direction = direction
        self.kind = kind
        self.block = block
        self.seed = seed
        self.lr = lr
        self.values = values
    }

    public var projectedGrad: Float { values[0] }
}

/// A loss that was NaN or infinite: the step is abandoned with θ moved back; the run's files keep
/// the last good step.
public struct NonFiniteLoss: Error, CustomStringConvertible {
    public let step: Int
    public let value: Double
    public var description: String { "loss is \(value) at step \(step + 1): stopped; the run keeps the state of the last good step" }
}

/// The common probe of the SPSA-family optimizers: θ += εz → ℓ₊, θ −= 2εz → ℓ₋, leaving θ at
/// θ − εz for the fused restore. `move(a)` perturbs every trainable tensor by a·direction (z, or
/// z/√H for HiZOO). On a non-finite loss θ is moved back and `NonFiniteLoss` thrown.
func twoSidedProbe(step t: Int, eps: Float, move: (Float) -> Void, loss: () throws -> Double) throws -> (plus: Double, minus: Double) {
    move(eps)
    let lp = try loss()
    guard lp.isFinite else { move(-eps); throw NonFiniteLoss(step: t, value: lp) }
    move(-2 * eps)
    let lm = try loss()
    guard lm.isFinite else { move(eps); throw NonFiniteLoss(step: t, value: lm) }
    return (lp, lm)
}

/// g = (ℓ₊ − ℓ₋)/2ε, rounded once to f32: the value recorded and used by the update.
func projectedGradient(_ p: (plus: Double, minus: Double), eps: Float) -> Float {
    Float((p.plus - p.minus) / (2 * Double(eps)))
}

extension TrainableSet {
    /// Perturbs every tensor by scale·z(seed) on the weights stream.
    func perturb(_ backend: any Backend, seed: UInt64, scale: Float) {
        backend.perturb(entries.map { StreamItem($0.tensor, tensorId: $0.tensorId) }, seed: seed, stream: 0, scale: scale)
    }

    /// The f32 state tensors of a stateful optimizer, one per entry, filled with `value`,
    /// accounted under the ledger's `optimizer` tag whatever the weights' dtype.
    func allocateState(_ backend: any Backend, value: Float = 0) throws -> [Tensor] {
        let state = try entries.map { try backend.allocate([$0.tensor.count], dtype: .f32, tag: .optimizer) }
        if value != 0 { fillState(state, value, backend: backend) }
        return state
    }
}

/// Sets every element of the state tensors to `value` (allocation zero-fills; HiZOO's H starts at 1).
func fillState(_ tensors: [Tensor], _ value: Float, backend: any Backend) {
    var host: [Float] = []
    for t in tensors {
        if host.count < t.count { host = [Float](repeating: value, count: t.count) }
        host.withUnsafeBytes { backend.copy(t, fromHost: UnsafeRawBufferPointer(rebasing: $0[0..<(t.count * 4)])) }
    }
}
