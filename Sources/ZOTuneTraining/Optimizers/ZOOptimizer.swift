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
    /// Forward passes per step.
    var forwardsPerStep: Int { get }
    /// Passes over θ per step that regenerate z (probes, restores, updates, candidate moves).
    var passesPerStep: Double { get }
    /// Bytes of optimizer state (f32, under the ledger's `optimizer` tag).
    var stateBytes: Int { get }
    /// GEMM FLOPs per step beyond the forwards (Newton–Schulz of the matrix optimizers; 0 for the others).
    var matrixFlopsPerStep: Double { get }

    /// Step t: `loss` evaluates the step's minibatch at the current θ.
    func step(_ t: Int, runSeed: UInt64, lr: Float, loss: () throws -> Double) throws -> StepOutcome
    /// Redoes recorded steps (in order) without forwards.
    func replay(_ records: [ZORecord])
    /// State back to its initial value (the trainer reloads the base weights and replays).
    func resetState()
}

extension ZOOptimizer {
    public var matrixFlopsPerStep: Double { 0 }
}

/// What one step produced: its records (one per direction) and the loss it reports.
public struct StepOutcome: Sendable {
    public let records: [ZORecord]
    public let loss: Double
}

/// One direction of one step, as stored in the trajectory: enough to redo the update exactly.
public struct ZORecord: Sendable, Equatable {
    public var step: UInt32
    public var direction: UInt16
    public var seed: UInt64
    public var lr: Float
    /// The optimizer's declared fields (`recordFields`), `values[0]` being g.
    public var values: [Float]

    public init(step: UInt32, direction: UInt16, seed: UInt64, lr: Float, values: [Float]) {
        self.step = step
        self.direction = direction
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

/// The step of the optimizers that probe one two-sided direction and record g alone (MMT, Adam,
/// Sign): probe along z, then `update` (the fused restore + update pass) with the step's record.
/// The step loss is (ℓ₊ + ℓ₋)/2.
func twoSidedStep(_ t: Int, runSeed: UInt64, lr: Float, eps: Float, set: TrainableSet, backend: any Backend,
                  loss: () throws -> Double, update: (ZORecord) -> Void) throws -> StepOutcome {
    let seed = stepSeed(runSeed: runSeed, step: t, direction: 0)
    let p = try twoSidedProbe(step: t, eps: eps, move: { set.perturb(backend, seed: seed, scale: $0) }, loss: loss)
    let r = ZORecord(step: UInt32(t), direction: 0, seed: seed, lr: lr, values: [projectedGradient(p, eps: eps)])
    update(r)
    return StepOutcome(records: [r], loss: (p.plus + p.minus) / 2)
}

/// g = (ℓ₊ − ℓ₋)/2ε, rounded once to f32: the value recorded and used by the update.
func projectedGradient(_ p: (plus: Double, minus: Double), eps: Float) -> Float {
    Float((p.plus - p.minus) / (2 * Double(eps)))
}

extension TrainableSet {
    /// Perturbs every tensor by scale·z(seed) on the weights stream.
    func perturb(_ backend: any Backend, seed: UInt64, scale: Float) {
        for e in entries { backend.perturb(e.tensor, seed: seed, tensorId: e.tensorId, stream: 0, scale: scale) }
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
