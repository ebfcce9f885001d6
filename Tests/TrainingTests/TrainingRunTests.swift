import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneTraining

/// A run is one value: `TrainingRun` in a Swift program, `--config` files that rerun any run bit
/// for bit (and refuse what they cannot mean, naming the key), and `zotune sweep` over cells that
/// resume one by one. On the tiny Llama and the SST-2-shaped workspace of KillResumeTests.
final class TrainingRunTests: XCTestCase {
    let tinyRun = ["--device", "cpu", "--steps", "12", "--batch-size", "4", "--lr", "1e-3", "--eval-every", "4",
                   "--train-count", "6", "--dev-count", "3", "--test-count", "3", "--save-every", "1", "--seed", "5"]

    func zotune(_ bin: URL, _ args: [String]) throws -> (status: Int32, stderr: String) { try runCapturing(bin, args) }

    /// A run from flags and the same run from the config.json it wrote: the trajectory files and
    /// the exported weights are the same bytes (full tuning, and a LoRA adapter under ZO-Adam).
    func testConfigFileRerunsTheRunBitForBit() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let base = ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path] + tinyRun
        for (name, extra, exported) in [("mezo", ["--eps", "1e-2"], "model/model.safetensors"),
                                        ("lora-adam", ["--peft", "lora", "--lora-rank", "4", "--optimizer", "zo-adam", "--beta1", "0.8"],
                                         "adapter/adapter_model.safetensors")] {
            let a = w.root.appendingPathComponent("\(name)-flags"), b = w.root.appendingPathComponent("\(name)-config")
            XCTAssertEqual(try zotune(bin, base + extra + ["--out", a.path]).status, 0, name)
            let config = a.appendingPathComponent("config.json")
            XCTAssertEqual(try zotune(bin, ["train", "--config", config.path, "--out", b.path, "--device", "cpu"]).status, 0, name)
            for file in ["trajectory.zot", exported] {
                let x = try Data(contentsOf: a.appendingPathComponent(file)), y = try Data(contentsOf: b.appendingPathComponent(file))
                XCTAssertTrue(x == y, "\(name): \(file) differs between the flags' run and its config.json's")
            }
            // The second run's config.json is the first's but for its own directory.
            let ra = try TrainingRun.load(config), rb = try TrainingRun.load(b.appendingPathComponent("config.json"))
            var rb2 = rb
            rb2.out = ra.out
            XCTAssertEqual(ra, rb2, name)
            XCTAssertEqual(rb.out, b.path)
        }
    }

    /// Options typed on the command line override the file's; the others keep the file's values
    /// (ZO-Adam's β₂ from the file, β₁ and the learning rate from the command line). The file may
    /// leave the model and the task, which it otherwise requires, to the command line.
    func testTypedOptionsOverrideTheFile() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let file = w.root.appendingPathComponent("run.json")
        try Data("""
        {"data-dir": "\(w.data.path)", "steps": 3, "batch-size": 4, "train-count": 6,
         "dev-count": 3, "test-count": 3, "lr": 1e-3, "optimizer": {"name": "zo-adam", "beta2": 0.95}}
        """.utf8).write(to: file)
        let out = w.root.appendingPathComponent("run")
        let r = try zotune(bin, ["train", "--config", file.path, "--model", w.model.path, "--task", "sst2",
                                 "--lr", "2e-3", "--beta1", "0.8", "--steps", "2", "--out", out.path, "--device", "cpu"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let run = try TrainingRun.load(out.appendingPathComponent("config.json"))
        XCTAssertEqual(run.model, w.model.path)
        XCTAssertEqual(run.task, "sst2")
        XCTAssertEqual(run.lr, 2e-3)
        XCTAssertEqual(run.steps, 2)
        XCTAssertEqual(run.batchSize, 4)
        let fields = run.optimizer!.fields
        XCTAssertEqual(run.optimizer!.kind, .zoAdam)
        XCTAssertEqual(fields["beta1"], "0.8")
        XCTAssertEqual(fields["beta2"], "0.95")
    }

    /// An unknown key, a value of the wrong type, one out of range and two options that conflict
    /// are refused with one line naming the key; the command exits 64 (a usage error).
    func testBadRunFilesAreRefusedNamingTheKey() throws {
        func refusal(_ json: String) -> String? {
            do { _ = try TrainingRun.decode(Data(json.utf8), source: "run.json", fallbacks: [:]).validate(); return nil } catch { return "\(error)" }
        }
        let head = #""model": "m", "task": "sst2""#
        let cases: [(String, [String])] = [
            ("{\(head), \"learning-rate\": 1e-3}", ["run.json", "unknown key", "\"learning-rate\""]),
            ("{\(head), \"steps\": \"ten\"}", ["run.json", "\"steps\"", "an integer"]),
            ("{\(head), \"seed\": -1}", ["\"seed\""]),
            ("{\(head), \"optimizer\": {\"name\": \"mezo\", \"beta1\": 0.9}}", ["\"optimizer\"", "\"beta1\""]),
            ("{\(head), \"optimizer\": \"adamw\"}", ["\"optimizer\"", "adamw"]),
            ("{\(head), \"steps\": 0}", ["--steps", "at least 1"]),
            ("{\(head), \"lr\": -1}", ["--lr"]),
            ("{\(head), \"optimizer\": {\"name\": \"zo-adam\", \"beta1\": 1.5}}", ["--beta1"]),
            ("{\(head), \"optimizer\": \"zoop\", \"peft\": \"lora\"}", ["--optimizer zoop", "--peft"]),
            ("{\(head), \"task-file\": \"x.jsonl\"}", ["--task-file", "--task custom"]),
            ("{\"task\": \"sst2\"}", ["\"model\"", "missing", "--model"]),
            ("{\"model\": \"m\"}", ["\"task\"", "missing", "--task"]),
        ]
        for (json, words) in cases {
            guard let message = refusal(json) else { XCTFail("accepted: \(json)"); continue }
            for word in words { XCTAssertTrue(message.contains(word), "\(json): \(message) does not name \(word)") }
            XCTAssertFalse(message.contains("\n"), message)
        }
        // The same keys given by the command line: taken where the file has none, never over the file's.
        let filled = try TrainingRun.decode(Data("{\"model\": \"m\"}".utf8), fallbacks: ["model": "other", "task": "rte"])
        XCTAssertEqual(filled.model, "m")
        XCTAssertEqual(filled.task, "rte")
        // A sweep's base run has no command line to give them: the message names no flag.
        XCTAssertThrowsError(try TrainingRun.decode(Data("{\"task\": \"sst2\"}".utf8), source: "base.json")) {
            XCTAssertEqual("\($0)", "base.json: \"model\": missing (the checkpoint to train)")
        }
        // A file that is not there: its path once, then the cause.
        let absent = "/nonexistent-\(UUID().uuidString)/run.json"
        XCTAssertThrowsError(try TrainingRun.load(URL(fileURLWithPath: absent))) { XCTAssertEqual("\($0)", "\(absent): no such file or directory") }
        // Through the command: one Error line, exit 64.
        let bin = try binary()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-run-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("{\(head), \"bogus\": 1}".utf8).write(to: file)
        let r = try zotune(bin, ["train", "--config", file.path, "--out", file.path + ".out"])
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.stderr.hasPrefix("Error: \(file.path): unknown key \"bogus\""), r.stderr)
    }

    /// `zotune sweep` over a 2 × 2 grid, stopped by SIGTERM in its second cell and run again,
    /// ends with the same table as a sweep never stopped; the chosen cell is the best by dev.
    func testStoppedSweepResumesToTheSameTable() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let base = try sweepBase(w)
        func sweep(_ out: URL) throws -> Process { try startSweep(bin, base: base, grids: ["lr=1e-2,1e-3", "seed=0,1"], out: out) }
        let whole = w.root.appendingPathComponent("whole"), stopped = w.root.appendingPathComponent("stopped")
        let a = try sweep(whole)
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)

        let b = try sweep(stopped)
        // Stop once the first cell is done and the second has saved a few steps.
        let second = stopped.appendingPathComponent("lr=1e-2,seed=1/trajectory.zot")
        waitForSavedSteps(b, trajectory: second, atLeast: 5, poll: 10_000)
        XCTAssertTrue(b.isRunning, "the sweep finished before it could be stopped")
        kill(b.processIdentifier, SIGTERM)
        b.waitUntilExit()
        XCTAssertEqual(b.terminationStatus, 128 + SIGTERM)
        let half = try TrajectoryFile.read(second).header.progress
        XCTAssertLessThan(half.completedSteps, 40, "the second cell was not stopped midway")
        let c = try sweep(stopped)
        c.waitUntilExit()
        XCTAssertEqual(c.terminationStatus, 0)

        let x = try timelessSweepTable(whole), y = try timelessSweepTable(stopped)
        XCTAssertEqual(x.cells.count, 4)
        XCTAssertEqual(x.cells, y.cells)
        XCTAssertTrue(x.cells.allSatisfy(\.finished))
        XCTAssertEqual(x.best, y.best)
        let bestDev = x.cells.compactMap(\.bestDev).max()
        XCTAssertEqual(x.cells.first { $0.cell == x.best }?.bestDev, bestDev)
        XCTAssertEqual(x.cells.first(where: { $0.bestDev == bestDev })?.cell, x.best, "the first of equal cells is chosen")
        let md = try String(contentsOf: whole.appendingPathComponent("sweep.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("Best by dev: \(x.best ?? "?")."), md)
        XCTAssertTrue(FileManager.default.fileExists(atPath: whole.appendingPathComponent("dev.svg").path))
    }

    /// The example of docs/training.md: fine-tuning from Swift with a TrainingRun, as written there.
    func testSwiftExampleFineTunes() throws {
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let (modelPath, dataDir) = (w.model.path, w.data.path)
        let out = w.root.appendingPathComponent("runs/example").path
        // --- docs/training.md, "From Swift" ---
        var run = TrainingRun(model: modelPath, task: "sst2", dataDir: dataDir, out: out)
        run.steps = 12
        run.batchSize = 4
        run.evalEvery = 4
        (run.trainCount, run.devCount, run.testCount) = (6, 3, 3)
        run.lr = 1e-3
        run.optimizer = .defaults(.zoAdam, eps: 1e-2)
        run.peft = .lora(LoRAOptions(rank: 4))
        try run.validate()
        let result = try run.start(on: KernelBackend.cpu()) { step in
            if let dev = step.devMetric { print("step \(step.step): dev accuracy \(dev)") }
        }
        print("best dev \(result.summary.bestDev) at step \(result.summary.bestStep); adapter in \(out)/adapter")
        // --- end of the example ---
        XCTAssertEqual(result.summary.steps, 12)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/adapter/adapter_model.safetensors"))
        XCTAssertEqual(try TrainingRun.load(URL(fileURLWithPath: out + "/config.json")), run.resolved())
    }
}
