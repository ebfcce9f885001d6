import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// Seed 000's protocol (docs/pretraining.md): a run from a given checkpoint (`--init-from`) with the
/// embeddings frozen, one layer at a time for an epoch each, each later turn from a fresh seeded
/// init. Against closed facts: frozen tensors are the checkpoint's bytes, an untrained block is the
/// checkpoint's bytes, a re-initialised block is ModelInit's values; resume, replay and the run
/// file reproduce the run bit for bit.
final class PretrainInitFromTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()
    var tokenizerPath: String { modelFixtures.appendingPathComponent("tokenizers/smollm.json").path }
    let shape = LlamaShape(layers: 2, hidden: 32, heads: 4, kvHeads: 2, maxPositions: 64)
    /// The run's init options; the checkpoint is drawn with another seed, so that a re-initialised
    /// block and the checkpoint's block differ in every value.
    let runInit = InitOptions(seed: 5, std: 0.05)

    func files() throws -> (corpus: URL, checkpoint: URL) {
        let root = tempDir()
        let corpus = root.appendingPathComponent("corpus.txt")
        try PretrainTests.text.write(to: corpus, atomically: true, encoding: .utf8)
        let ckpt = root.appendingPathComponent("fo-embed")
        try InitCheckpoint.write(config: try shape.config(for: try InitCheckpoint.tokenizer(tokenizerPath)), init: InitOptions(seed: 99, std: 0.05),
                                 tokenizerSource: tokenizerPath, to: ckpt)
        return (corpus, ckpt)
    }

    /// The seed-000 command line as a value (2 layers: 2 turns of one epoch).
    func seed000(_ f: (corpus: URL, checkpoint: URL), out: URL) -> PretrainingRun {
        var run = PretrainingRun(corpus: f.corpus.path, tokenizer: tokenizerPath, out: out.path)
        (run.heldOutEvery, run.seqLen, run.batchSize, run.dataSeed, run.seed) = (3, 16, 4, 1, 3)
        (run.initFrom, run.initSeed, run.initStd, run.freeze) = (f.checkpoint.path, runInit.seed, runInit.std, ["embed_tokens"])
        run.blocks = BlockwiseOptions(level: .layerNorm, schedule: .sequential, stepsPerBlock: 1, reinit: InitOptions())
        run.blockEpoch = true
        run.optimizer = .mezo(MeZOOptions(eps: 1e-2))
        (run.lr, run.evalEvery, run.saveEvery, run.keepLast) = (1e-2, 2, 2, true)
        return run
    }

    func host(_ lm: CausalLM, _ filter: (String) -> Bool) -> [String: [Float]] { weights(lm).filter { filter($0.key) } }

    func fileWeights(_ dir: URL) throws -> [String: [Float]] { weights(try ModelFile.open(dir.path).load(on: backend)) }

    func testInitFromTrainsOnlyTheScheduledBlocks() throws {
        let f = try files()
        let dir = tempDir()
        let run = seed000(f, out: dir)
        let session = try run.prepare(in: try RunDirectory(out: dir.path, resume: nil, overwrite: false), on: backend)
        let epoch = session.epochSteps
        XCTAssertGreaterThanOrEqual(epoch, 2, "the corpus should give an epoch of a few steps")
        XCTAssertEqual(session.trainer.options.steps, 2 * epoch, "no --steps: one pass over the 2 blocks")
        // The base is the checkpoint byte for byte.
        XCTAssertEqual(try checkpointHash(dir.appendingPathComponent("init").path), try checkpointHash(f.checkpoint.path))
        let ckpt = try fileWeights(f.checkpoint)
        let blockwise = try XCTUnwrap(session.optimizer as? BlockwiseZO)
        XCTAssertEqual(blockwise.blocks.map(\.name), ["layer 0", "layer 1"])
        XCTAssertTrue(blockwise.blocks[1].entries.map { blockwise.set.entries[$0].name }.contains("model.norm.weight"), "the final norm trains with the last layer")
        XCTAssertFalse(session.trainer.set.entries.contains { $0.name.contains("embed_tokens") })

        // At each turn's start: block 0 is the checkpoint's (not re-drawn), block 1 is ModelInit's
        // values for the run's seed (pass 0), which differ from the checkpoint's.
        var seen: [(Int, Int)] = []
        var layer0AtTurn1: [String: [Float]] = [:]
        blockwise.turnStarted = { b, t in
            seen.append((b, t))
            if b == 0 { XCTAssertTrue(self.host(session.model) { $0.contains("layers.0.") } == ckpt.filter { $0.key.contains("layers.0.") }) }
            if b == 1 {
                layer0AtTurn1 = self.host(session.model) { $0.contains("layers.0.") }
                XCTAssertNotEqual(layer0AtTurn1, ckpt.filter { $0.key.contains("layers.0.") }, "block 0 did not train in its turn")
                XCTAssertTrue(self.host(session.model) { $0 == "model.embed_tokens.weight" } == ckpt.filter { $0.key == "model.embed_tokens.weight" })
                for e in blockwise.inner[1].set.entries {
                    let fresh = try! self.backend.allocate(e.tensor.shape, tag: .weights)
                    ModelInit.fill(fresh, name: e.name, options: self.runInit, backend: self.backend)
                    XCTAssertEqual(self.backend.toHost(e.tensor), self.backend.toHost(fresh), "\(e.name) at the start of its turn")
                    if e.tensor.rank >= 2 { XCTAssertNotEqual(self.backend.toHost(e.tensor), ckpt[e.name], e.name) }
                }
            }
        }
        let summary = try session.train()
        try session.finish(summary)
        XCTAssertEqual(seen.map(\.0), [0, 1])
        XCTAssertEqual(seen.map(\.1), [0, epoch])
        // Afterwards: the frozen embedding is the checkpoint's; layer 0 kept its end-of-turn values.
        let after = weights(session.model)
        XCTAssertEqual(after["model.embed_tokens.weight"], ckpt["model.embed_tokens.weight"])
        XCTAssertTrue(after.filter { $0.key.contains("layers.0.") } == layer0AtTurn1, "layer 0 moved outside its turn")
        let exported = try fileWeights(dir.appendingPathComponent("model"))
        XCTAssertEqual(exported["model.embed_tokens.weight"], ckpt["model.embed_tokens.weight"], "export: frozen tensor changed")
        XCTAssertTrue(exported == after)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["init-from"] as? String, f.checkpoint.path)
        XCTAssertEqual(config["freeze"] as? [String], ["embed_tokens"])
    }

    // A stop inside block 1's turn (after its re-initialisation) resumes to the same records and
    // weights; the records replay onto RUN/init (the trainable set rebuilt from "full-except:…").
    func testResumeAndReplayBitForBit() throws {
        let f = try files()
        let dirA = tempDir(), dirB = tempDir()
        var runA = seed000(f, out: dirA)
        runA.keepLast = false  // keep-best replays from the base as well
        let (summaryA, _) = try runA.start(on: backend)
        let trajA = try TrajectoryFile.read(dirA.appendingPathComponent("trajectory.zot"))
        XCTAssertEqual(trajA.header.trainable, "full-except:embed_tokens")
        let epoch = trajA.header.blocks!.stepsPerBlock
        XCTAssertEqual(summaryA.steps, 2 * epoch)

        var runB = runA
        runB.out = dirB.path
        do {
            let session = try runB.prepare(in: try RunDirectory(out: dirB.path, resume: nil, overwrite: false), on: backend)
            XCTAssertThrowsError(try session.trainer.run(resume: false, stopAfter: epoch + 1)) { XCTAssertTrue($0 is RunInterrupted) }
        }
        // Resuming with another value of a run option is refused naming it.
        var other = runB
        other.freeze = ["embed_tokens", "model.norm"]
        XCTAssertThrowsError(try other.start(on: backend, resume: dirB.path)) {
            XCTAssertTrue("\($0)".hasPrefix("--freeze: the run in"), "\($0)")
        }
        _ = try runB.start(on: backend, resume: dirB.path)
        XCTAssertEqual(try TrajectoryFile.read(dirB.appendingPathComponent("trajectory.zot")).records, trajA.records)
        XCTAssertTrue(try fileWeights(dirB.appendingPathComponent("model")) == fileWeights(dirA.appendingPathComponent("model")))

        let replayed = tempDir().appendingPathComponent("replayed")
        _ = try TrainingRun.replay(trajectory: dirA.appendingPathComponent("trajectory.zot"), base: dirA.appendingPathComponent("init").path,
                                   to: replayed, on: backend)
        XCTAssertTrue(try fileWeights(replayed) == fileWeights(dirA.appendingPathComponent("model")))
    }

    // A run file: JSON round trip to the same value; an unknown key, a wrong type, a nested field
    // that does not exist and conflicting options are refused naming the key or option.
    func testRunFileRoundTripAndRefusals() throws {
        let f = try files()
        var run = seed000(f, out: tempDir())
        run.steps = 7
        run.evalCount = 3
        let url = tempDir().appendingPathComponent("run.json")
        try run.resolved().write(to: url)
        XCTAssertEqual(try PretrainingRun.load(url), run.resolved())
        func refused(_ json: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
            try Data(json.utf8).write(to: url)
            XCTAssertThrowsError(try PretrainingRun.load(url).validate(), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)", file: file, line: line)
            }
        }
        let head = #""corpus": "c.txt", "tokenizer": "t.json""#
        try refused("{\(head), \"sequence-length\": 64}", "unknown key \"sequence-length\"")
        try refused("{\(head), \"seq-len\": \"64\"}", "\"seq-len\": expected an integer")
        try refused("{\(head), \"freeze\": \"embed_tokens\"}", "\"freeze\": expected a list of strings")
        try refused("{\(head), \"blocks\": {\"level\": \"layer+norm\", \"steps\": 3}}", "\"blocks\": unknown field \"steps\"")
        try refused("{\(head), \"init-from\": \"ckpt\", \"hidden\": 64}", "--init-from ckpt and --hidden conflict")
        try refused("{\(head), \"block-epoch\": true}", "--block-steps epoch applies to --block-schedule sequential")
        try refused("{\(head), \"freeze\": [\"\"]}", "--freeze: an empty name fragment")
        try refused("{\"tokenizer\": \"t.json\"}", "\"corpus\": missing (the text to pre-train on: give it in the file or with --corpus)")
        // corpus and tokenizer typed on the command line stand in where the file has none.
        try Data("{\"tokenizer\": \"t.json\"}".utf8).write(to: url)
        let filled = try PretrainingRun.load(url, fallbacks: ["corpus": "c.txt", "tokenizer": "other.json"])
        XCTAssertEqual(filled.corpus, "c.txt")
        XCTAssertEqual(filled.tokenizer, "t.json")
    }

    // The CLI: the flags run, then `--config RUN/config.json --out B`: the same trajectory and the
    // same exported bytes; a typed option overrides the file; bad --init-from values are one line.
    func testCLIConfigRoundTripAndBadInitFrom() throws {
        let bin = try binary()
        let f = try files()
        let root = tempDir()
        let a = root.appendingPathComponent("a"), b = root.appendingPathComponent("b"), c = root.appendingPathComponent("c")
        let flags = ["pretrain", "--corpus", f.corpus.path, "--tokenizer", tokenizerPath, "--held-out-every", "3", "--seq-len", "16",
                     "--batch-size", "4", "--data-seed", "1", "--seed", "3", "--init-from", f.checkpoint.path, "--init-seed", "5",
                     "--init-std", "0.05", "--freeze", "embed_tokens", "--blocks", "layer+norm", "--block-schedule", "sequential",
                     "--block-steps", "epoch", "--block-reinit", "--eps", "1e-2", "--lr", "1e-2", "--eval-every", "2", "--save-every", "2",
                     "--device", "cpu"]
        let ranA = try runCapturing(bin, flags + ["--out", a.path])
        XCTAssertEqual(ranA.status, 0, ranA.stderr)
        let ranB = try runCapturing(bin, ["pretrain", "--config", a.appendingPathComponent("config.json").path, "--out", b.path, "--device", "cpu"])
        XCTAssertEqual(ranB.status, 0, ranB.stderr)
        XCTAssertEqual(try TrajectoryFile.read(b.appendingPathComponent("trajectory.zot")).records,
                       try TrajectoryFile.read(a.appendingPathComponent("trajectory.zot")).records)
        XCTAssertEqual(try Data(contentsOf: b.appendingPathComponent("model/model.safetensors")),
                       try Data(contentsOf: a.appendingPathComponent("model/model.safetensors")))
        XCTAssertEqual(try String(contentsOf: b.appendingPathComponent("config.json"), encoding: .utf8),
                       try String(contentsOf: a.appendingPathComponent("config.json"), encoding: .utf8).replacingOccurrences(of: a.path, with: b.path))
        // A typed option over the file.
        let ranC = try runCapturing(bin, ["pretrain", "--config", a.appendingPathComponent("config.json").path, "--out", c.path, "--lr", "2e-2",
                                          "--steps", "1", "--device", "cpu"])
        XCTAssertEqual(ranC.status, 0, ranC.stderr)
        let configC = try PretrainingRun.load(c.appendingPathComponent("config.json"))
        XCTAssertEqual(configC.lr, 2e-2)
        XCTAssertEqual(configC.steps, 1)
        XCTAssertEqual(configC.initFrom, f.checkpoint.path)

        // Bad --init-from values and conflicts: exit 64, one Error: line naming the option and the cause.
        let noWeights = root.appendingPathComponent("no-weights")
        try FileManager.default.createDirectory(at: noWeights, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: f.checkpoint.appendingPathComponent("config.json"), to: noWeights.appendingPathComponent("config.json"))
        let gpt2 = modelFixtures.appendingPathComponent("models/gpt2")
        let smallVocab = root.appendingPathComponent("small-vocab")
        try FileManager.default.createDirectory(at: smallVocab, withIntermediateDirectories: true)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: f.checkpoint.appendingPathComponent("config.json"))) as! [String: Any]
        cfg["vocab_size"] = 10
        try JSONSerialization.data(withJSONObject: cfg).write(to: smallVocab.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: f.checkpoint.appendingPathComponent("model.safetensors"), to: smallVocab.appendingPathComponent("model.safetensors"))
        let base = Array(flags.prefix(while: { $0 != "--init-from" }))
        let rest = ["--device", "cpu", "--steps", "1", "--out", root.appendingPathComponent("bad").path]
        let cases: [([String], String)] = [
            (["--init-from", root.appendingPathComponent("missing").path], "--init-from \(root.appendingPathComponent("missing").path): no such directory"),
            (["--init-from", noWeights.path], "no model.safetensors"),
            (["--init-from", gpt2.path], "pre-training builds Llama models"),
            (["--init-from", smallVocab.path], "vocab_size 10 is smaller than the tokenizer's"),
            (["--init-from", f.checkpoint.path, "--layers", "3"], "--init-from \(f.checkpoint.path) and --layers conflict"),
            (["--init-from", f.checkpoint.path, "--freeze", "no_such_tensor"], "--freeze \"no_such_tensor\" matches no tensor"),
            (["--init-from", f.checkpoint.path, "--freeze", "layers,norm,embed"], "freezes every tensor"),
        ]
        for (args, expected) in cases {
            let (status, err) = try runCapturing(bin, base + args + rest)
            let errors = err.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            XCTAssertEqual(status, 64, "\(args): \(err)")
            XCTAssertEqual(errors.count, 1, "\(args): \(err)")
            XCTAssertTrue(errors.first?.contains(expected) == true, "\(args): expected '\(expected)' in \(err)")
        }
    }
}
