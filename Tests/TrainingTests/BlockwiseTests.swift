import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels
@testable import ZOTuneTraining

/// Block-wise ZO (ZO-FAMILY §4.11): the partition, one block = plain ZO bit for bit, 2 forwards
/// per block per step, independent directions per block with each block's update the closed form
/// −η·g_b·z_b, frozen blocks untouched, re-initialisation, and replay/resume through the trainer.
final class BlockwiseTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()
    let base = BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32")

    func runOptions(steps: Int, lr: Float = 1e-3, keepBest: Bool = false) -> RunOptions {
        RunOptions(task: "tiny", steps: steps, batchSize: 4, lr: lr, evalEvery: 3, seed: 11, dataSeed: 5, saveEvery: 2, keepBest: keepBest)
    }

    func trainer(_ lm: CausalLM, _ config: OptimizerConfig, _ blocks: BlockwiseOptions?, _ dir: URL, steps: Int, lr: Float = 1e-3,
                 keepBest: Bool = false) throws -> Trainer {
        try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: runOptions(steps: steps, lr: lr, keepBest: keepBest),
                    optimizer: try config.make(set: TrainableSet.full(lm), backend: backend, blocks: blocks), runDir: dir, base: base)
    }

    static let mezo = OptimizerConfig.mezo(MeZOOptions(eps: 1e-2))

    // Every tensor in exactly one block, in the set's order; the levels cut where ZO-Bench's
    // regexes do, on Llama, OPT and GPT-2 names; bad patterns are refused by name.
    func testPartitionOnEveryArchitecture() throws {
        for arch in ["llama", "opt", "gpt2"] {
            let names = TrainableSet.full(try tinyModel(arch)).entries.map(\.name)
            for level in [BlockLevel.layer, .attnMLP, .tensor, .whole] {
                let blocks = try BlockPartition.blocks(names, level: level)
                XCTAssertEqual(blocks.flatMap(\.entries).sorted(), Array(names.indices), "\(arch) \(level)")
                let layers = 2
                let outside = names.filter { BlockPartition.layerPart($0) == nil }.count
                let expected = [BlockLevel.layer: layers + outside, .attnMLP: 2 * layers + outside, .tensor: names.count, .whole: 1][level]!
                XCTAssertEqual(blocks.count, expected, "\(arch) \(level): \(blocks.map(\.name))")
            }
            // attn-mlp: the norm before attention goes with attention, the one before the MLP with the MLP.
            let halves = try BlockPartition.blocks(names, level: .attnMLP)
            let attn = try XCTUnwrap(halves.first { $0.name == "layer 1 attn" }).entries.map { names[$0] }
            let mlp = try XCTUnwrap(halves.first { $0.name == "layer 1 mlp" }).entries.map { names[$0] }
            let (attnNorm, mlpNorm) = [
                "llama": ("input_layernorm", "post_attention_layernorm"), "opt": ("self_attn_layer_norm", "final_layer_norm"),
                "gpt2": ("ln_1", "ln_2")][arch]!
            XCTAssertTrue(attn.contains { $0.contains(attnNorm) } && !attn.contains { $0.contains(mlpNorm) }, "\(arch): \(attn)")
            XCTAssertTrue(mlp.contains { $0.contains(mlpNorm) } && mlp.allSatisfy { !$0.contains("attn") }, "\(arch): \(mlp)")
        }
        let names = TrainableSet.full(try tinyModel()).entries.map(\.name)
        let custom = try BlockPartition.blocks(names, level: .patterns, patterns: ["layers.0.", "layers.1.", "."])
        XCTAssertEqual(custom.map { $0.entries.count }, [9, 9, 3])
        XCTAssertThrowsError(try BlockPartition.blocks(names, level: .patterns, patterns: ["layers."])) {
            XCTAssertTrue("\($0)".contains("model.embed_tokens.weight"), "\($0)")
        }
        XCTAssertThrowsError(try BlockPartition.blocks(names, level: .patterns, patterns: ["nowhere", "."])) {
            XCTAssertTrue("\($0)".contains("\"nowhere\" matches no"), "\($0)")
        }
    }

    // One block (per step or sequential) is the plain optimizer: the same records and weights, bit for bit.
    func testOneBlockIsPlainZOBitForBit() throws {
        let configs: [OptimizerConfig] = [Self.mezo, .zoAdam(ZOAdamOptions(eps: 1e-2)), TrainerTests.configs[12]]
        for config in configs {
            let plain = try tinyModel(), dirA = tempDir()
            _ = try trainer(plain, config, nil, dirA, steps: 6).run()
            let a = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
            for schedule in BlockwiseOptions.Schedule.allCases {
                let blocked = try tinyModel(), dirB = tempDir()
                let options = BlockwiseOptions(level: .whole, schedule: schedule, stepsPerBlock: 4)
                _ = try trainer(blocked, config, options, dirB, steps: 6).run()
                let b = try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot"))
                XCTAssertEqual(a.records, b.records, "\(config.kind) \(schedule)")
                XCTAssertTrue(weights(plain) == weights(blocked), "\(config.kind) \(schedule): weights differ")
                XCTAssertEqual(b.header.blocks, options)
            }
        }
    }

    // Per-step schedule: 2 forwards per block; each block's seed is its own, so same-shaped tensors
    // of different blocks get uncorrelated z; each block moves by exactly −η·g_b·z_b (the naive
    // update from the record and the z stream), and blocks after b see b's update (Gauss–Seidel).
    func testPerStepForwardsIndependenceAndClosedFormUpdate() throws {
        let lm = try tinyModel()
        let set = TrainableSet.full(lm)
        let opt = try BlockwiseZO(set: set, options: BlockwiseOptions(level: .layer), config: Self.mezo, backend: backend) {
            try Self.mezo.make(set: $0, backend: self.backend)
        }
        XCTAssertEqual(opt.blocks.map(\.name), ["model.embed_tokens.weight", "layer 0", "layer 1", "model.norm.weight", "lm_head.weight"])
        XCTAssertEqual(opt.forwardsPerStep, 10)
        let scorer = Scorer(model: lm, tokenizer: try tokenizer())
        let batch = Array(tinySplits().train.prefix(4))
        var forwards = 0
        let before = set.entries.map { backend.toHost($0.tensor) }
        let lr: Float = 1e-3
        let out = try opt.step(StepContext(step: 3, runSeed: 11, lr: lr, loss: { forwards += 1; return try scorer.score(batch, objective: .crossEntropy).loss }))
        XCTAssertEqual(forwards, 2 * opt.blocks.count)
        XCTAssertEqual(out.records.map(\.block), [0, 1, 2, 3, 4])
        XCTAssertEqual(Set(out.records.map(\.seed)).count, 5, "blocks share a seed")
        XCTAssertEqual(out.records[0].seed, stepSeed(runSeed: 11, step: 3, direction: 0), "block 0 keeps the run's seed")

        func z(_ i: Int, _ seed: UInt64) throws -> [Float] {
            let e = set.entries[i]
            let t = try backend.allocate(e.tensor.shape, tag: .workspace)
            backend.fillNormal(t, seed: seed, tensorId: e.tensorId, stream: 0, scale: 1)
            return backend.toHost(t)
        }
        for (b, block) in opt.blocks.enumerated() {
            let r = out.records[b]
            for i in block.entries {
                let after = backend.toHost(set.entries[i].tensor)
                let zi = try z(i, r.seed)
                // θ −= η·g·z after the restore (rounding of the ±ε moves only).
                for k in stride(from: 0, to: after.count, by: 7) {
                    let expected = before[i][k] - lr * r.projectedGrad * zi[k]
                    XCTAssertEqual(after[k], expected, accuracy: 2e-6 + 1e-6 * abs(expected), "\(set.entries[i].name)[\(k)]")
                }
            }
        }
        // Same-shaped tensors of layers 0 and 1 (q_proj, 32×32): correlation of their step-3 z.
        let q0 = set.entries.firstIndex { $0.name == "model.layers.0.self_attn.q_proj.weight" }!
        let q1 = set.entries.firstIndex { $0.name == "model.layers.1.self_attn.q_proj.weight" }!
        let (za, zb) = (try z(q0, out.records[1].seed), try z(q1, out.records[2].seed))
        let n = Float(za.count)
        let corr = zip(za, zb).reduce(0) { $0 + $1.0 * $1.1 } / (za.reduce(0) { $0 + $1 * $1 }.squareRoot() * zb.reduce(0) { $0 + $1 * $1 }.squareRoot())
        XCTAssertLessThan(abs(corr), 4 / n.squareRoot(), "cross-block z correlation \(corr)")
    }

    // Sequential schedule: step t moves block ⌊t/N⌋ mod B only; every other block keeps its bytes.
    func testSequentialScheduleFreezesTheOtherBlocks() throws {
        let lm = try tinyModel()
        let set = TrainableSet.full(lm)
        let opt = try BlockwiseZO(set: set, options: BlockwiseOptions(level: .layer, schedule: .sequential, stepsPerBlock: 2),
                                  config: Self.mezo, backend: backend) { try Self.mezo.make(set: $0, backend: self.backend) }
        let scorer = Scorer(model: lm, tokenizer: try tokenizer())
        let batch = Array(tinySplits().train.prefix(4))
        for t in 0..<12 {
            let before = set.entries.map { backend.toHost($0.tensor) }
            var forwards = 0
            let out = try opt.step(StepContext(step: t, runSeed: 11, lr: 1e-3, loss: { forwards += 1; return try scorer.score(batch, objective: .crossEntropy).loss }))
            let active = (t / 2) % 5
            XCTAssertEqual(forwards, 2)
            XCTAssertEqual(out.records.map(\.block), [UInt32(active)])
            for (b, block) in opt.blocks.enumerated() {
                for i in block.entries {
                    let moved = backend.toHost(set.entries[i].tensor) != before[i]
                    XCTAssertEqual(moved, b == active, "step \(t): \(set.entries[i].name) moved = \(moved)")
                }
            }
        }
    }

    // Re-initialisation: when block b's turn starts (lr 0, so nothing else moves), its tensors hold
    // ModelInit's values — the init seed's in the first pass, a fresh draw in the second — with
    // the configured statistics (matrices N(0, std²), norm gains 1); block 0 is not re-drawn at step 0.
    func testSequentialReinitialisation() throws {
        let lm = try tinyModel()
        let set = TrainableSet.full(lm)
        let initOptions = InitOptions(seed: 99, std: 0.05)
        let opt = try BlockwiseZO(set: set, options: BlockwiseOptions(level: .layer, schedule: .sequential, stepsPerBlock: 1, reinit: initOptions),
                                  config: Self.mezo, backend: backend) { try Self.mezo.make(set: $0, backend: self.backend) }
        let original = set.entries.map { backend.toHost($0.tensor) }
        func expected(_ i: Int, pass: Int) throws -> [Float] {
            let e = set.entries[i]
            let t = try backend.allocate(e.tensor.shape, tag: .workspace)
            ModelInit.fill(t, name: e.name, options: initOptions, pass: pass, backend: backend)
            return backend.toHost(t)
        }
        // The step's probe and restore leave the active block within rounding of where it was.
        func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 } }
        var firstPass: [Int: [Float]] = [:]
        for t in 0..<10 {
            _ = try opt.step(StepContext(step: t, runSeed: 1, lr: 0, loss: { 1.0 }))
            let b = t % 5
            for i in opt.blocks[b].entries {
                let now = backend.toHost(set.entries[i].tensor)
                if t == 0 {
                    XCTAssertTrue(close(now, original[i]), "block 0 re-drawn at step 0")
                    continue
                }
                XCTAssertTrue(close(now, try expected(i, pass: t / 5)), "step \(t) \(set.entries[i].name)")
                if t < 5 { firstPass[i] = now } else if let f = firstPass[i], set.entries[i].tensor.rank == 2 { XCTAssertFalse(close(now, f)) }
            }
        }
        XCTAssertFalse(close(original[0], try expected(0, pass: 0)), "the tiny model's embedding is not ModelInit's")
        // Statistics of one drawn matrix (layer 1's up projection, 64 × 32) and of the gains.
        let up = set.entries.firstIndex { $0.name == "model.layers.1.mlp.up_proj.weight" }!
        let v = backend.toHost(set.entries[up].tensor)
        let mean = v.reduce(0, +) / Float(v.count)
        let std = (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(v.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 4 * 0.05 / Float(v.count).squareRoot())
        XCTAssertEqual(std, 0.05, accuracy: 0.05 * 0.08)
        let norm = set.entries.firstIndex { $0.name == "model.layers.1.input_layernorm.weight" }!
        XCTAssertTrue(backend.toHost(set.entries[norm].tensor).allSatisfy { abs($0 - 1) <= 1e-6 })
    }

    // Through the trainer: block-wise runs (per step; sequential with re-initialisation; with
    // stateful and DiZO optimizers) replay onto a fresh model bit for bit, a stopped run resumes to
    // the same records and weights, and resuming with other blocks is refused naming the field.
    func testBlockwiseRunsReplayAndResume() throws {
        let cases: [(OptimizerConfig, BlockwiseOptions)] = [
            (Self.mezo, BlockwiseOptions(level: .attnMLP)),
            (.zoAdam(ZOAdamOptions(eps: 1e-2)), BlockwiseOptions(level: .layer, schedule: .sequential, stepsPerBlock: 2)),
            (Self.mezo, BlockwiseOptions(level: .layer, schedule: .sequential, stepsPerBlock: 1, reinit: InitOptions(seed: 3))),
            (TrainerTests.configs[12], BlockwiseOptions(level: .layer)),
        ]
        for (config, blocks) in cases {
            let label = "\(config.kind) \(blocks.summary)"
            for keepBest in [false, true] {
                let lm = try tinyModel(), dir = tempDir()
                _ = try trainer(lm, config, blocks, dir, steps: 8, keepBest: keepBest).run()
                let traj = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot"))
                XCTAssertEqual(traj.header.blocks, blocks)
                let fresh = try tinyModel()
                try traj.header.optimizer.make(set: TrainableSet.full(fresh), backend: backend, blocks: traj.header.blocks)
                    .replay(traj.records.filter { Int($0.step) < traj.header.progress.bestStep })
                XCTAssertTrue(weights(fresh) == weights(lm), "\(label) keepBest \(keepBest): replay differs")
                if !keepBest { XCTAssertFalse(weights(fresh) == weights(try tinyModel()), "\(label): nothing moved") }
            }
            let whole = try tinyModel(), dirA = tempDir()
            _ = try trainer(whole, config, blocks, dirA, steps: 8).run()
            let dirB = tempDir()
            XCTAssertThrowsError(try trainer(try tinyModel(), config, blocks, dirB, steps: 8).run(stopAfter: 5)) { XCTAssertTrue($0 is RunInterrupted) }
            let resumed = try tinyModel()
            _ = try trainer(resumed, config, blocks, dirB, steps: 8).run(resume: true)
            XCTAssertEqual(try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot")).records,
                           try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot")).records, label)
            XCTAssertTrue(weights(whole) == weights(resumed), "\(label): resumed weights differ")
        }
        let dir = tempDir()
        XCTAssertThrowsError(try trainer(try tinyModel(), Self.mezo, BlockwiseOptions(level: .layer), dir, steps: 4).run(stopAfter: 2))
        XCTAssertThrowsError(try trainer(try tinyModel(), Self.mezo, BlockwiseOptions(level: .tensor), dir, steps: 4).run(resume: true)) {
            XCTAssertTrue("\($0)".contains("blocks"), "\($0)")
        }
    }

    // Zoop and re-initialisation outside the sequential schedule are refused with the reason.
    func testRefusals() throws {
        let lm = try tinyModel()
        XCTAssertThrowsError(try OptimizerConfig.zoop(ZoopOptions()).make(set: TrainableSet.full(lm), backend: backend,
                                                                          blocks: BlockwiseOptions())) {
            XCTAssertTrue("\($0)".contains("block-wise"), "\($0)")
        }
        XCTAssertThrowsError(try Self.mezo.make(set: TrainableSet.full(lm), backend: backend,
                                                blocks: BlockwiseOptions(reinit: InitOptions()))) {
            XCTAssertTrue("\($0)".contains("sequential"), "\($0)")
        }
    }
}
