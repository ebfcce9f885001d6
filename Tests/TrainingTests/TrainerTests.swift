import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels
@testable import ZOTuneTraining

/// The trainer with every optimizer on the tiny Llama: deterministic runs, replay and resume
/// bit-identical to the uninterrupted run, keep-best, NaN handling, state accounting, and the
/// trajectory file (v2 checksum, v1 compatibility).
final class TrainerTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    /// Each optimizer with hyper-parameters that move the tiny model (HiZOO's α large enough for H to change).
    static let configs: [OptimizerConfig] = [
        .mezo(MeZOOptions(eps: 1e-2, weightDecay: 0.01)),
        .zoSGDMomentum(ZOMomentumOptions(eps: 1e-2, momentum: 0.9, weightDecay: 0.01)),
        .zoAdam(ZOAdamOptions(eps: 1e-2, weightDecay: 0.01)),
        .zoSign(ZOSignOptions(eps: 1e-2, weightDecay: 0.01)),
        .zoCons(ZOConsOptions(eps: 1e-2)),
        .hizoo(HiZOOOptions(eps: 1e-2, hessianSmoothing: 0.1, weightDecay: 0.01)),
        .zoMuon(ZOMuonOptions(eps: 1e-2, nsSteps: 5, otherLRRatio: 0.5)),
        .zoMuon(ZOMuonOptions(eps: 1e-2, nsSteps: 5, placement: .beforeNS, otherLRRatio: 0.5, tallScale: true)),
        .jaguarSign(JaguarSignOptions(eps: 1e-2, fraction: 0.3)),
        .jaguarSign(JaguarSignOptions(eps: 1e-2, fraction: 0.3, variant: .released, smoothing: true)),
        .jaguarMuon(JaguarMuonOptions(eps: 1e-2, fraction: 0.3, nsSteps: 5, otherLRRatio: 0.5)),
        .jaguarMuon(JaguarMuonOptions(eps: 1e-2, fraction: 0.3, nsSteps: 5, orthogonalizeEvery: 3, otherLRRatio: 0.5)),
        .dizo(DiZOOptions(eps: 1e-2, weightDecay: 0.01, interval: 3, iterations: 2, layers: ["q", "k", "v"])),
    ]

    func runOptions(steps: Int, keepBest: Bool = true) -> RunOptions {
        RunOptions(task: "tiny", steps: steps, batchSize: 4, lr: 1e-3, schedule: .linear, evalEvery: 4, seed: 7, dataSeed: 3, saveEvery: 2,
                   keepBest: keepBest)
    }

    let base = BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32")

    func trainer(_ lm: CausalLM, _ config: OptimizerConfig, _ dir: URL, steps: Int = 10, keepBest: Bool = true,
                 base: BaseCheckpoint? = nil) throws -> Trainer {
        try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: runOptions(steps: steps, keepBest: keepBest),
                    optimizer: try config.make(set: TrainableSet.full(lm), backend: backend), runDir: dir, base: base ?? self.base)
    }

    // Two runs with the same options give the same trajectory and weights; replaying the
    // trajectory on the base rebuilds those weights bit for bit (all 10 steps, and — with
    // keep-best — up to the best dev step), for every optimizer.
    func testDeterminismAndReplayForEveryOptimizer() throws {
        for config in Self.configs {
            var results: [([ZORecord], [String: [Float]])] = []
            for keepBest in [false, false, true] {
                let lm = try tinyModel(), dir = tempDir()
                _ = try trainer(lm, config, dir, keepBest: keepBest).run()
                let traj = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot"))
                XCTAssertEqual(traj.records.filter { $0.kind == .direction }.count, 10, "\(config)")
                // DiZO: one ratio per projected tensor after steps 3, 6 and 9.
                if config.kind == .dizo { XCTAssertEqual(traj.records.filter { $0.kind == .projection }.count, 3 * 6) }
                XCTAssertEqual(traj.header.optimizer, config)
                XCTAssertTrue(traj.records.allSatisfy { $0.values.count == traj.header.recordFields.count })
                results.append((traj.records, weights(lm)))

                let fresh = try tinyModel()
                let best = traj.header.progress.bestStep
                if !keepBest { XCTAssertEqual(best, 10) }
                try traj.header.optimizer.make(set: TrainableSet.full(fresh), backend: backend).replay(traj.records.filter { Int($0.step) < best })
                XCTAssertTrue(weights(fresh) == weights(lm), "\(config): replay of \(best) steps differs from the trained weights")
            }
            XCTAssertEqual(results[0].0, results[1].0, "\(config)")
            XCTAssertTrue(results[0].1 == results[1].1, "\(config): same options, different weights")
            XCTAssertTrue(results[0].0.contains { $0.projectedGrad != 0 }, "\(config)")
            XCTAssertFalse(results[0].1 == weights(try tinyModel()), "\(config): the weights did not move")
        }
    }

    // A run stopped after 5 of 10 steps and resumed in a new trainer (fresh base weights, fresh
    // state) reaches the uninterrupted run's records and weights exactly, for every optimizer.
    func testResumeAfterInterruptionForEveryOptimizer() throws {
        for config in Self.configs {
            let whole = try tinyModel(), dirA = tempDir()
            _ = try trainer(whole, config, dirA).run()
            let dirB = tempDir()
            XCTAssertThrowsError(try trainer(try tinyModel(), config, dirB).run(stopAfter: 5)) { XCTAssertTrue($0 is RunInterrupted) }
            let resumed = try tinyModel()
            _ = try trainer(resumed, config, dirB).run(resume: true)
            let a = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
            let b = try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(a.records, b.records, "\(config)")
            XCTAssertEqual(a.header, b.header, "\(config)")
            XCTAssertTrue(weights(whole) == weights(resumed), "\(config): resumed run's weights differ")
        }
        // Resuming with other optimizer options is refused, naming the field.
        let dir = tempDir()
        XCTAssertThrowsError(try trainer(try tinyModel(), Self.configs[1], dir).run(stopAfter: 2))
        XCTAssertThrowsError(try trainer(try tinyModel(), .zoSGDMomentum(ZOMomentumOptions(eps: 1e-2, momentum: 0.5)), dir).run(resume: true)) {
            XCTAssertTrue("\($0)".contains("optimizer"), "\($0)")
        }
    }

    // The forwards' numerics are part of a run: resuming under another weight dtype or GEMM
    // precision is refused, naming the field and the option to pass; a trajectory from before
    // the precision was recorded resumes under any.
    func testResumeKeepsDTypeAndPrecision() throws {
        let config = Self.configs[0], dir = tempDir()
        var f32 = base; f32.precision = "f32"
        XCTAssertThrowsError(try trainer(try tinyModel(), config, dir, base: f32).run(stopAfter: 2)) { XCTAssertTrue($0 is RunInterrupted) }
        XCTAssertEqual(try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot")).header.base.precision, "f32")
        var mixed = f32; mixed.precision = "mixed"
        XCTAssertThrowsError(try trainer(try tinyModel(), config, dir, base: mixed).run(resume: true)) {
            XCTAssertTrue("\($0)".contains("--precision: the run was started with f32, not mixed") && "\($0)".contains("pass --precision f32"), "\($0)")
        }
        var bf16 = f32; bf16.dtype = "bf16"
        XCTAssertThrowsError(try trainer(try tinyModel(), config, dir, base: bf16).run(resume: true)) {
            XCTAssertTrue("\($0)".contains("--dtype: the run was started with f32, not bf16"), "\($0)")
        }
        XCTAssertNoThrow(try trainer(try tinyModel(), config, dir, base: f32).run(resume: true))
        let old = tempDir()
        XCTAssertThrowsError(try trainer(try tinyModel(), config, old).run(stopAfter: 2)) { XCTAssertTrue($0 is RunInterrupted) }
        XCTAssertNoThrow(try trainer(try tinyModel(), config, old, base: mixed).run(resume: true))
    }

    // A NaN at any forward of a step: the step throws, θ is back where it was (to rounding of the
    // probe moves) and the optimizer state is untouched.
    func testNonFiniteLossLeavesTheLastGoodState() throws {
        for config in Self.configs {
            let lm = try tinyModel()
            let optimizer = try config.make(set: TrainableSet.full(lm), backend: backend)
            let batch = randomTokenBatch(batch: 2, length: 5, vocab: lm.config.vocabSize)
            _ = try optimizer.step(StepContext(step: 0, runSeed: 1, lr: 1e-3, loss: { try languageModelLoss(lm, batch) }))
            let before = weights(lm)
            let state = stateSnapshot(optimizer)
            for bad in 1...optimizer.forwardsPerStep {
                var calls = 0
                XCTAssertThrowsError(try optimizer.step(StepContext(step: 1, runSeed: 1, lr: 1e-3, loss: {
                    calls += 1
                    return calls == bad ? .nan : try languageModelLoss(lm, batch)
                }))) { XCTAssertTrue("\($0)".contains("step 2"), "\($0)") }
                for (name, w) in weights(lm) {
                    for (x, y) in zip(w, before[name]!) { XCTAssertEqual(x, y, accuracy: 1e-6 * (abs(y) + 0.05), "\(config) NaN at forward \(bad): \(name)") }
                }
                XCTAssertTrue(stateSnapshot(optimizer) == state, "\(config): state changed by a failed step")
            }
        }
    }

    func stateSnapshot(_ o: any ZOOptimizer) -> [[Float]] {
        switch o {
        case let m as ZOMomentum: return m.momentum.map { backend.toHost($0) }
        case let a as ZOAdam: return (a.m + a.v).map { backend.toHost($0) }
        case let h as HiZOO: return h.hessian.map { backend.toHost($0) }
        case let m as ZOMuon: return m.buffers.map { backend.toHost($0) }
        case let j as JaguarSign: return j.state.map { backend.toHost($0) }
        case let j as JaguarMuon: return (j.memory + j.cache.compactMap { $0 }).map { backend.toHost($0) }
        default: return []
        }
    }

    // State bytes = 4 × trainable parameters per state tensor (f32 whatever the weights' dtype),
    // and exactly that much shows in the ledger's optimizer tag.
    func testStateBytesMatchTheAnalyticFigure() throws {
        let perTensor: [OptimizerKind: Int] = [.mezo: 0, .zoSGDMomentum: 1, .zoAdam: 2, .zoSign: 0, .zoCons: 0, .hizoo: 1,
                                                .zoMuon: 1, .jaguarSign: 1, .jaguarMuon: 1, .dizo: 0]
        for config in Self.configs {
            let b = KernelBackend.cpu(ledger: MemoryLedger(name: "state"))
            let ckpt = try HFCheckpoint(path: modelFixtures.appendingPathComponent("models/llama").path)
            let lm = try CausalLM(config: ckpt.config, reader: ckpt, backend: b, dtype: .bf16)
            let set = TrainableSet.full(lm)
            let optimizer = try config.make(set: set, backend: b)
            var want = perTensor[config.kind]! * 4 * set.parameterCount
            // Jaguar-Muon orthogonalising every k > 1 steps keeps NS(M) of each hidden matrix too.
            if let o = config.options(JaguarMuonOptions.self), o.orthogonalizeEvery > 1 {
                want += 4 * set.entries.filter(\.isHiddenMatrix).reduce(0) { $0 + $1.tensor.count }
            }
            // DiZO keeps θ⁰ and the search's start of its projected tensors, in the weights' dtype.
            if let o = config.options(DiZOOptions.self) {
                want += 2 * set.entries.filter { o.projects($0.name) }.reduce(0) { $0 + $1.tensor.bytes }
            }
            XCTAssertEqual(optimizer.stateBytes, want, "\(config)")
            XCTAssertEqual(b.ledger.snapshot.byTag[.optimizer]?.current ?? 0, want, "\(config)")
        }
    }

    // The memory report's inference-only reference excludes the optimizer state: the training
    // peak is at least the reference plus the state (Adam: 2 × 4 bytes per parameter).
    func testMemoryReferenceExcludesOptimizerState() throws {
        let lm = try tinyModel()
        let t = try trainer(lm, Self.configs[2], tempDir(), steps: 2)
        _ = try t.run()
        XCTAssertEqual(t.optimizer.stateBytes, 8 * t.set.parameterCount)
        XCTAssertGreaterThanOrEqual(t.stepPeakBytes - t.forwardPeakBytes, t.optimizer.stateBytes)
    }

    // Version 3 files: any flipped byte (header, records or checksum) or a cut is a clear error.
    func testTrajectoryChecksumCatchesEveryFlippedByte() throws {
        let lm = try tinyModel(), dir = tempDir()
        _ = try trainer(lm, Self.configs[4], dir, steps: 3).run()
        let url = dir.appendingPathComponent("trajectory.zot")
        let good = try Data(contentsOf: url)
        XCTAssertEqual(try TrajectoryFile.read(url).records.count, 3)
        let bad = dir.appendingPathComponent("bad.zot")
        for i in stride(from: 0, to: good.count, by: 1) {
            var d = good
            d[i] ^= 0x04
            try d.write(to: bad)
            XCTAssertThrowsError(try TrajectoryFile.read(bad), "byte \(i) of \(good.count) flipped and still read") { e in
                XCTAssertTrue("\(e)".contains(bad.path), "\(e)")
            }
        }
        try good.prefix(good.count - 5).write(to: bad)
        XCTAssertThrowsError(try TrajectoryFile.read(bad)) { XCTAssertTrue("\($0)".contains("checksum"), "\($0)") }
        try Data("garbage".utf8).write(to: bad)
        XCTAssertThrowsError(try TrajectoryFile.read(bad)) { XCTAssertTrue("\($0)".contains("magic"), "\($0)") }
    }

    // A version-1 file (MeZO, 24-byte records, flat header) written byte by byte as the previous
    // release did still reads and replays to the same weights as the run that wrote it.
    func testVersion1TrajectoriesStillReplay() throws {
        let lm = try tinyModel(), dir = tempDir()
        let mezo = MeZOOptions(eps: 1e-2, weightDecay: 0.01)
        _ = try trainer(lm, .mezo(mezo), dir, steps: 4, keepBest: false).run()
        let v2 = try TrajectoryFile.read(dir.appendingPathComponent("trajectory.zot"))
        let r = v2.header.run
        let header: [String: Any] = [
            "optimizer": "mezo", "task": r.task, "steps": r.steps, "batch_size": r.batchSize, "lr": Double(r.schedule.lr),
            "schedule": r.schedule.kind.rawValue, "warmup_steps": 0, "eps": Double(mezo.eps), "weight_decay": Double(mezo.weightDecay),
            "directions": 1, "one_sided": false, "objective": "ce", "eval_every": r.evalEvery, "seed": "7", "data_seed": "3",
            "save_every": 2, "max_length": 256, "keep_best": false, "format": "zotune-trajectory", "version": 1,
            "z_stream_version": Int(ZT_Z_STREAM_VERSION), "base_hash": "test", "dtype": "f32", "trainable": "full",
            "completed_steps": 4, "best_step": 4, "best_dev_accuracy": 0.5, "dev_accuracy_before": 0.5,
        ]
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var bytes = Array("ZOTRAJ".utf8) + [0, 1]
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        put(UInt32(json.count))
        bytes += json
        for rec in v2.records {
            put(rec.step); put(rec.direction); put(UInt16(0)); put(rec.seed); put(rec.lr.bitPattern); put(rec.projectedGrad.bitPattern)
        }
        let url = dir.appendingPathComponent("v1.zot")
        try Data(bytes).write(to: url)
        let v1 = try TrajectoryFile.read(url)
        XCTAssertEqual(v1.header.optimizer, .mezo(mezo))
        XCTAssertEqual(v1.header.run, r)
        XCTAssertEqual(v1.records, v2.records)
        let fresh = try tinyModel()
        try v1.header.optimizer.make(set: TrainableSet.full(fresh), backend: backend).replay(v1.records)
        XCTAssertTrue(weights(fresh) == weights(lm), "v1 replay differs")
    }

    // A version-2 file (records without the block field) still reads to the same records.
    func testVersion2TrajectoriesStillRead() throws {
        let lm = try tinyModel(), dir = tempDir()
        _ = try trainer(lm, Self.configs[2], dir, steps: 3).run()
        let url = dir.appendingPathComponent("trajectory.zot")
        let v3 = try TrajectoryFile.read(url)
        let bytes = [UInt8](try Data(contentsOf: url))
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        var out = Array(bytes[0..<7]) + [2] + Array(bytes[8..<(12 + headerLength)])
        let size = 24 + 4 * v3.header.recordFields.count
        for i in 0..<v3.records.count {
            let o = 12 + headerLength + i * size
            out += bytes[o..<(o + 8)] + bytes[(o + 12)..<(o + size)]   // drop the u32 block
        }
        let sum = out.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64($0.count), 0x2A70) }
        withUnsafeBytes(of: sum.littleEndian) { out += $0 }
        let v2url = dir.appendingPathComponent("v2.zot")
        try Data(out).write(to: v2url)
        let v2 = try TrajectoryFile.read(v2url)
        XCTAssertEqual(v2.records, v3.records)
        XCTAssertEqual(v2.header.optimizer, v3.header.optimizer)
    }

    // A non-finite value (a diverged run's perplexity) is written as null, not dropped with its line.
    func testNonFiniteMetricsAreNull() throws {
        let t = try trainer(try tinyModel(), Self.configs[0], tempDir(), steps: 1)
        t.log(["step": 3, "dev_perplexity": Double.infinity, "loss": 1.5])
        XCTAssertEqual(t.metrics.last, "{\"dev_perplexity\":null,\"loss\":1.5,\"step\":3}")
    }

    // The sampler: one permutation per epoch, every example once per epoch, and the same batches
    // as the per-example construction it replaced.
    func testSamplerIsAPermutationPerEpoch() {
        let s = MinibatchSampler(count: 10, batchSize: 4, dataSeed: 3)
        let firstEpochs = (0..<5).flatMap { s.indices(step: $0) }   // 20 = two epochs
        XCTAssertEqual(Set(firstEpochs[0..<10]), Set(0..<10))
        XCTAssertEqual(Set(firstEpochs[10..<20]), Set(0..<10))
        XCTAssertNotEqual(Array(firstEpochs[0..<10]), Array(firstEpochs[10..<20]))
        XCTAssertEqual(MinibatchSampler(count: 10, batchSize: 4, dataSeed: 3).indices(step: 3), s.indices(step: 3))
    }
}

extension TrainerTests {
    func adapterValues(_ a: any PEFTAdapter) -> [[Float]] { a.set.entries.map { backend.toHost($0.tensor) } }

    // PEFT runs: only the adapter moves; replaying the trajectory onto a fresh model and adapter
    // rebuilds it bit for bit (keep-best included); a run stopped after 5 of 10 steps and resumed
    // in a new trainer reaches the same records and adapter; another --peft is refused on resume.
    func testPEFTRunsReplayAndResume() throws {
        let pefts: [PEFTConfig] = [.lora(LoRAOptions(rank: 2, alpha: 4, targets: ["q", "v"])), .prefix(PrefixOptions(tokens: 2)),
                                   .prompt(PromptOptions(tokens: 3))]
        for peft in pefts {
            for config in [Self.configs[0], Self.configs[2], Self.configs[12]] {
                var c = config
                if var o = config.options(DiZOOptions.self) { o.layers = peft.name == "lora" ? ["q", "v"] : ["prompt_embeddings"]; c = .dizo(o) }
                func run(_ dir: URL, stopAfter: Int? = nil, resume: Bool = false, keepBest: Bool = false) throws -> (CausalLM, any PEFTAdapter) {
                    let lm = try tinyModel()
                    let adapter = try peft.make(model: lm)
                    let t = try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: runOptions(steps: 10, keepBest: keepBest),
                                        optimizer: try c.make(set: adapter.set, backend: backend), runDir: dir, base: base, adapter: adapter)
                    _ = try t.run(resume: resume, stopAfter: stopAfter)
                    return (lm, adapter)
                }
                let label = "\(peft.name) \(c.kind.rawValue)"
                let dirA = tempDir()
                let (lmA, a) = try run(dirA)
                XCTAssertTrue(weights(lmA) == weights(try tinyModel()), "\(label): the base moved")
                let traj = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
                XCTAssertEqual(traj.header.peft, peft)
                XCTAssertEqual(traj.header.trainable, peft.name)
                // Replay: a fresh adapter, the records up to the kept (best) step.
                let fresh = try tinyModel()
                let replayed = try XCTUnwrap(traj.header.peft).make(model: fresh)
                fresh.hook = replayed
                XCTAssertNotEqual(adapterValues(replayed), adapterValues(a), "\(label): the adapter did not move")
                try traj.header.optimizer.make(set: replayed.set, backend: backend)
                    .replay(traj.records.filter { Int($0.step) < traj.header.progress.bestStep })
                XCTAssertEqual(adapterValues(replayed), adapterValues(a), "\(label): replay differs from the trained adapter")
                // Kill and resume.
                let dirB = tempDir()
                XCTAssertThrowsError(try run(dirB, stopAfter: 5)) { XCTAssertTrue($0 is RunInterrupted) }
                let (_, b) = try run(dirB, resume: true)
                XCTAssertEqual(try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot")).records, traj.records, label)
                XCTAssertEqual(adapterValues(b), adapterValues(a), "\(label): resumed adapter differs")
                // Keep-best: back to the adapter's initial values, then the records up to the best step.
                let dirC = tempDir()
                let (_, kept) = try run(dirC, keepBest: true)
                let best = try TrajectoryFile.read(dirC.appendingPathComponent("trajectory.zot"))
                let again = try peft.make(model: try tinyModel())
                try c.make(set: again.set, backend: backend).replay(best.records.filter { Int($0.step) < best.header.progress.bestStep })
                XCTAssertEqual(adapterValues(again), adapterValues(kept), "\(label): keep-best (best step \(best.header.progress.bestStep))")
            }
        }
        // Resuming with another adapter is refused, naming the field.
        let dir = tempDir(), lm = try tinyModel()
        let lora = try PEFTConfig.lora(LoRAOptions(rank: 2)).make(model: lm)
        XCTAssertThrowsError(try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: runOptions(steps: 4),
                                         optimizer: try Self.configs[0].make(set: lora.set, backend: backend), runDir: dir, base: base,
                                         adapter: lora).run(stopAfter: 2))
        let other = try tinyModel()
        let prefix = try PEFTConfig.prefix(PrefixOptions(tokens: 2)).make(model: other)
        XCTAssertThrowsError(try Trainer(model: other, tokenizer: try tokenizer(), splits: tinySplits(), options: runOptions(steps: 4),
                                         optimizer: try Self.configs[0].make(set: prefix.set, backend: backend), runDir: dir, base: base,
                                         adapter: prefix).run(resume: true)) {
            XCTAssertTrue("\($0)".contains("peft"), "\($0)")
        }
    }
}
