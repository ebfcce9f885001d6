import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

private let mistralSWA = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../ModelTests/Fixtures/models/mistral_swa").standardized

/// `--sliding-window N` is part of a run (TrainingRun.slidingWindow, "sliding-window" in run files,
/// the header's base.sliding_window). The model: the tiny random Mistral of the model fixtures
/// (window 3, its transformers logits in reference.json) with its window taken out of config.json,
/// as llama.cpp's converter leaves a Mistral GGUF, and a small BPE tokenizer; SST-2-style prompts
/// of 8 to 12 tokens, all longer than the window.
final class SlidingWindowRunTests: XCTestCase {
    let backend = KernelBackend.cpu()

    /// The workspace of KillResumeTests with `model` replaced by the windowless Mistral.
    func windowlessMistral() throws -> (model: URL, data: URL, root: URL) {
        let w = try workspace()
        let fm = FileManager.default
        try fm.removeItem(at: w.model.appendingPathComponent("model.safetensors"))
        try fm.copyItem(at: mistralSWA.appendingPathComponent("model.safetensors"), to: w.model.appendingPathComponent("model.safetensors"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: mistralSWA.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config.removeValue(forKey: "sliding_window") as? Int, 3)
        try JSONSerialization.data(withJSONObject: config).write(to: w.model.appendingPathComponent("config.json"))
        return w
    }

    func run(_ w: (model: URL, data: URL, root: URL), window: Int?, out: String) -> TrainingRun {
        var r = TrainingRun(model: w.model.path, task: "sst2", dataDir: w.data.path, out: w.root.appendingPathComponent(out).path)
        (r.trainCount, r.devCount, r.testCount, r.batchSize, r.steps, r.saveEvery) = (6, 3, 3, 6, 4, 1)
        r.slidingWindow = window
        // ε = 1e-20 leaves every weight as it is (|θ| ≫ 1e-20 / 2⁻²⁴): step 1's loss is the loss of θ.
        r.optimizer = .mezo(MeZOOptions(eps: 1e-20))
        r.lr = 1e-3
        return r
    }

    /// Largest |logit − transformers'| (reference.json: the HF checkpoint with its window of 3) over
    /// the fixture's unpadded prompts (7, 4 and 1 tokens).
    func logitError(_ lm: CausalLM) throws -> Float {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: mistralSWA.appendingPathComponent("reference.json"))) as! [String: Any]
        var worst: Float = 0
        for p in json["unpadded"] as! [[String: Any]] {
            let ids = (p["input_ids"] as! [NSNumber]).map { Int32(truncating: $0) }
            let want = (p["logits"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
            let got = backend.toHost(try lm.allLogits(TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: ids.count), batch: 1, length: ids.count)))
            let v = lm.config.vocabSize
            for t in 0..<ids.count { for j in 0..<v { worst = max(worst, abs(got[t * v + j] - want[t][j])) } }
        }
        return worst
    }

    /// The run's model is transformers' windowed Mistral (logits within the family bound of
    /// FamilyParityTests, 1e-4: the same math up to 32- to 128-long summation orders), and its first
    /// step's loss is that model's loss of the minibatch; without the option the same file attends to
    /// every key, far off both.
    func testTrainRunTakesTheWindow() throws {
        let w = try windowlessMistral()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let windowed = run(w, window: 3, out: "windowed"), full = run(w, window: nil, out: "full")
        let a = try windowed.prepare(in: try windowed.openDirectory(), on: backend)
        XCTAssertEqual((0..<a.model.config.numLayers).map { a.model.config.window(layer: $0) }, [3, 3])
        let err = try logitError(a.model)
        print("SlidingWindowRun: the run's model vs transformers (window 3): max |Δlogit| \(err)")
        XCTAssertLessThanOrEqual(err, 1e-4)
        let b = try full.prepare(in: try full.openDirectory(), on: backend)
        XCTAssertGreaterThan(try logitError(b.model), 0.1, "full attention is not the windowed reference")

        // The loss of θ on step 0's minibatch, before training, then as step 1 reports it.
        let before = try a.trainer.data.loss(step: 0, objective: .crossEntropy), fullLoss = try b.trainer.data.loss(step: 0, objective: .crossEntropy)
        XCTAssertGreaterThan(abs(before - fullLoss), 1e-4, "the prompts are longer than the window: the window changes the loss")
        var losses: [Double] = []
        _ = try a.train(progress: { losses.append($0.loss) })
        // ε·z moves no weight, so both probes are the forward `before` ran (same kernels, same order): equal.
        XCTAssertEqual(losses.first, before)
        XCTAssertNotEqual(losses.first, fullLoss)

        // The header records the window the option set; config.json holds it and reads back as the run.
        let header = try TrajectoryFile.read(a.trainer.trajectoryURL).header
        XCTAssertEqual(header.base.slidingWindow, 3)
        let config = try TrainingRun.load(URL(fileURLWithPath: windowed.out!).appendingPathComponent("config.json"))
        XCTAssertEqual(config.slidingWindow, 3)
        XCTAssertEqual(config, windowed.resolved())
        _ = try b.train()
        XCTAssertNil(try TrajectoryFile.read(b.trainer.trajectoryURL).header.base.slidingWindow)
    }

    /// Through the binary: config.json reruns the run bit for bit (trajectory and export), and the
    /// trajectory differs from the windowless run's; a resume with another window is refused naming
    /// the option; replay rebuilds the export from the header's window; memory and
    /// bench step take the option.
    func testRunFileResumeReplayAndStepCommandsKeepTheWindow() throws {
        let bin = try binary()
        let w = try windowlessMistral()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let args = ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu", "--steps", "3",
                    "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-2", "--train-count", "6", "--dev-count", "3", "--test-count", "3",
                    "--save-every", "1", "--seed", "5"]
        let a = w.root.appendingPathComponent("a"), b = w.root.appendingPathComponent("b"), c = w.root.appendingPathComponent("c")
        var r = try runCapturing(bin, args + ["--sliding-window", "3", "--out", a.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runCapturing(bin, ["train", "--config", a.appendingPathComponent("config.json").path, "--out", b.path, "--device", "cpu"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runCapturing(bin, args + ["--out", c.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        func bytes(_ d: URL, _ f: String) throws -> Data { try Data(contentsOf: d.appendingPathComponent(f)) }
        for f in ["trajectory.zot", "model/model.safetensors"] { XCTAssertTrue(try bytes(a, f) == bytes(b, f), "\(f): config.json's rerun differs") }
        XCTAssertFalse(try bytes(a, "trajectory.zot") == bytes(c, "trajectory.zot"), "the window changes the losses, so the updates")

        // Replay: the export of the window's run, byte for byte (its config included).
        let replayed = w.root.appendingPathComponent("replayed")
        r = try runCapturing(bin, ["replay", "--base", w.model.path, "--trajectory", a.appendingPathComponent("trajectory.zot").path,
                                   "--out", replayed.path, "--device", "cpu"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in ["model.safetensors", "config.json"] { XCTAssertTrue(try bytes(a, "model/" + f) == bytes(replayed, f), "replay: \(f) differs") }

        // Resume: an unfinished run (its header marked unfinished by a run stopped after one step).
        let d = w.root.appendingPathComponent("d")
        try {
            var stopped = run(w, window: 3, out: "d")
            stopped.steps = 3
            // The session holds the run's lock until it goes, at the end of this closure.
            let session = try stopped.prepare(in: try stopped.openDirectory(), on: backend)
            XCTAssertThrowsError(try session.trainer.run(resume: false, stopAfter: 1)) { XCTAssertTrue($0 is RunInterrupted) }
        }()
        let base = ["train", "--config", d.appendingPathComponent("config.json").path, "--resume", d.path, "--device", "cpu"]
        for (other, was) in [(["--sliding-window", "4"], "4"), (["--sliding-window", "0"], "none")] {
            r = try runCapturing(bin, base + other)
            // A refused resume: exit 1 (a run failure, as for every option the header compares), one line.
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("--sliding-window: the run was started with 3, not \(was)"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        r = try runCapturing(bin, base)
        XCTAssertEqual(r.status, 0, r.stderr)

        // memory and bench step size and time the windowed step (they refused the option before).
        for cmd in [["memory", "--batch-size", "2", "--seq-len", "8"], ["bench", "step", "--batch-size", "2", "--seq-len", "8", "--repeats", "1"]] {
            r = try runCapturing(bin, cmd + ["--model", w.model.path, "--device", "cpu", "--sliding-window", "3"])
            XCTAssertEqual(r.status, 0, "\(cmd[0]): \(r.stderr)")
        }
    }
}
