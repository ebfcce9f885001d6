import Foundation
import ZOTuneBackend

/// Block-wise ZO options (docs/blockwise.md), stored in the run header as "blocks".
public struct BlockwiseOptions: Sendable, Equatable, Codable {
    public enum Schedule: String, Sendable, Codable, CaseIterable {
        /// Every step, each block in turn gets its own forwards and update (Gauss–Seidel;
        /// ZO-Bench's coordinate mode): 2 × blocks forwards per step with ZO-SGD.
        case perStep = "per-step"
        /// Step t trains block ⌊t / stepsPerBlock⌋ mod blocks only; the others stay frozen
        /// (layer after layer, as the pre-training paper does).
        case sequential
    }

    public var level: BlockLevel
    public var patterns: [String]
    public var schedule: Schedule
    /// Sequential: steps spent on each block before moving on.
    public var stepsPerBlock: Int
    /// Sequential: re-initialise each block when its turn starts (not at step 0) with these
    /// random-init options (ModelInit): the init seed itself in the first pass over the blocks
    /// (a from-scratch model's block that has not been trained yet keeps its values), a fresh
    /// draw in later passes. nil: blocks keep their values.
    public var reinit: InitOptions?

    public init(level: BlockLevel = .layer, patterns: [String] = [], schedule: Schedule = .perStep, stepsPerBlock: Int = 100,
                reinit: InitOptions? = nil) {
        self.level = level
        self.patterns = patterns
        self.schedule = schedule
        self.stepsPerBlock = stepsPerBlock
        self.reinit = reinit
    }

    enum CodingKeys: String, CodingKey {
        case level, patterns, schedule, stepsPerBlock = "steps_per_block", reinit
    }

    /// "layer per-step", "attn-mlp sequential 50 steps, reinit".
    public var summary: String {
        var s = level == .patterns ? "patterns \(patterns)" : level.rawValue
        s += " " + schedule.rawValue
        if schedule == .sequential { s += ", \(stepsPerBlock) steps per block" + (reinit != nil ? ", reinit" : "") }
        return s
    }
}

/// Block-wise ZO over any optimizer of the family: one inner optimizer per block, each over that
/// block's tensors with its own state. Block b draws its directions from its own run seed (block 0
/// keeps the run's: one block is plain ZO bit for bit), never ZO-Bench's one seed for every block.
/// Each record carries its block, so replay hands it to that block's optimizer.
public final class BlockwiseZO: ZOOptimizer, @unchecked Sendable {
    public let options: BlockwiseOptions
    public let set: TrainableSet
    public let blocks: [Block]
    public let inner: [any ZOOptimizer]
    public let config: OptimizerConfig
    let backend: any Backend

    /// `make` builds the optimizer of one block's tensors from `config`, the run's optimizer.
    public init(set: TrainableSet, options: BlockwiseOptions, config: OptimizerConfig, backend: any Backend,
                make: (TrainableSet) throws -> any ZOOptimizer) throws {
        guard options.schedule == .perStep || options.stepsPerBlock >= 1 else { throw BlockError("steps per block must be at least 1") }
        if options.reinit != nil && options.schedule != .sequential { throw BlockError("block re-initialisation applies to the sequential schedule") }
        if options.reinit != nil, let e = set.entries.first(where: { $0.tensor.dtype != .f32 }) {
            throw BlockError("block re-initialisation writes f32 weights; \(e.name) is \(e.tensor.dtype)")
        }
        self.set = set
        self.options = options
        self.config = config
        self.backend = backend
        blocks = try BlockPartition.blocks(set.entries.map(\.name), level: options.level, patterns: options.patterns)
        guard blocks.count <= Int(UInt32.max) else { throw BlockError("too many blocks") }
        inner = try blocks.map { b in
            try make(TrainableSet(entries: b.entries.map { set.entries[$0] }, spec: set.spec))
        }
        if let first = inner.first, !first.replayable {
            throw BlockError("\(first.config.kind.rawValue) cannot run block-wise: its steps cannot be replayed from records")
        }
    }

    public var recordFields: [String] { inner[0].recordFields }
    var perStep: Bool { options.schedule == .perStep }
    public var forwardsPerStep: Int { perStep ? inner.reduce(0) { $0 + $1.forwardsPerStep } : inner[0].forwardsPerStep }
    public var meanForwardsPerStep: Double {
        perStep ? inner.reduce(0) { $0 + $1.meanForwardsPerStep } : inner.reduce(0) { $0 + $1.meanForwardsPerStep } / Double(inner.count)
    }
    /// Passes over θ: each inner pass touches only its block, so a step that visits every block
    /// costs the inner optimizer's passes once; a sequential step, its block's share of them.
    public var passesPerStep: Double {
        let total = Double(set.parameterCount)
        let shares = inner.map { $0.passesPerStep * Double($0.set.parameterCount) / max(1, total) }
        return perStep ? shares.reduce(0, +) : shares.reduce(0, +) / Double(inner.count)
    }
    public var stateBytes: Int { inner.reduce(0) { $0 + $1.stateBytes } }
    public var matrixFlopsPerStep: Double {
        perStep ? inner.reduce(0) { $0 + $1.matrixFlopsPerStep } : inner.reduce(0) { $0 + $1.matrixFlopsPerStep } / Double(inner.count)
    }

    /// Run seed of block b: the run's for block 0, a SplitMix of it and b for the others.
    public static func blockSeed(runSeed: UInt64, block: Int) -> UInt64 {
        block == 0 ? runSeed : stepSeed(runSeed: runSeed ^ 0xB10C_0000_0000_0000, step: block, direction: 0)
    }

    /// Sequential schedule: the block trained at step t, and which pass over the blocks it is.
    public func sequentialBlock(_ t: Int) -> (block: Int, pass: Int) {
        let span = t / options.stepsPerBlock
        return (span % blocks.count, span / blocks.count)
    }

    /// Whether step t starts a block's turn that re-initialises it.
    func reinitializes(_ t: Int) -> Bool {
        options.reinit != nil && t > 0 && t % options.stepsPerBlock == 0
    }

    func reinitialize(_ b: Int, pass: Int) {
        guard let initOptions = options.reinit else { return }
        for e in inner[b].set.entries { ModelInit.fill(e.tensor, name: e.name, options: initOptions, pass: pass, backend: backend) }
        inner[b].resetState()
    }

    /// Test hook: called with (block, step) when a sequential turn starts in a training step,
    /// after its re-initialisation and before the block's first update.
    public var turnStarted: ((Int, Int) -> Void)?

    public func step(_ context: StepContext) throws -> StepOutcome {
        let t = context.step
        let visit: [Int]
        if perStep {
            visit = Array(blocks.indices)
        } else {
            let (b, pass) = sequentialBlock(t)
            if reinitializes(t) { reinitialize(b, pass: pass) }
            if t % options.stepsPerBlock == 0 { turnStarted?(b, t) }
            visit = [b]
        }
        var records: [ZORecord] = []
        var lossSum = 0.0
        for b in visit {
            let c = StepContext(step: t, runSeed: Self.blockSeed(runSeed: context.runSeed, block: b), lr: context.lr,
                                loss: context.loss, searchLoss: context.searchLoss, scoreSamples: context.scoreSamples)
            let out = try inner[b].step(c)
            records += out.records.map { var r = $0; r.block = UInt32(b); return r }
            lossSum += out.loss
        }
        return StepOutcome(records: records, loss: lossSum / Double(visit.count))
    }

    /// Records in order, each run of one (step, block) handed to that block's optimizer; the
    /// sequential schedule's re-initialisations are redone where the steps cross into a new turn.
    public func replay(_ records: [ZORecord]) {
        var i = 0
        var lastStep: UInt32?
        while i < records.count {
            let (t, b) = (records[i].step, Int(records[i].block))
            var j = i + 1
            while j < records.count && records[j].step == t && records[j].block == records[i].block { j += 1 }
            precondition(b < inner.count, "record of step \(t) names block \(b); the partition has \(inner.count)")
            if !perStep && t != lastStep && reinitializes(Int(t)) { reinitialize(b, pass: sequentialBlock(Int(t)).pass) }
            inner[b].replay(Array(records[i..<j]))
            lastStep = t
            i = j
        }
    }

    public func resetState() { inner.forEach { $0.resetState() } }
}

extension OptimizerConfig {
    /// The run's optimizer over `set`: block-wise when `blocks` is given (each block gets its own
    /// instance of this optimizer), else over the whole set.
    public func make(set: TrainableSet, backend: any Backend, blocks: BlockwiseOptions?) throws -> any ZOOptimizer {
        guard let blocks else { return try make(set: set, backend: backend) }
        if kind == .zoop { throw BlockError("zoop perturbs activations, not weight blocks: it cannot run block-wise") }
        if let o = options(DiZOOptions.self) {
            // Checked over θ (a typo in --dizo-layers), then each block without a projected tensor
            // runs DiZO without searches: its ZO-SGD steps, the same as the others'.
            _ = try DiZO(set: TrainableSet(entries: set.entries.filter { o.projects($0.name) }, spec: set.spec), options: o, backend: backend)
            return try BlockwiseZO(set: set, options: blocks, config: self, backend: backend) { s in
                var own = o
                if !s.entries.contains(where: { o.projects($0.name) }) { own.interval = 0 }
                return try DiZO(set: s, options: own, backend: backend)
            }
        }
        return try BlockwiseZO(set: set, options: blocks, config: self, backend: backend) { try self.make(set: $0, backend: backend) }
    }
}
