import Foundation
import XCTest
import ZOTuneTraining

/// A real interruption: `zotune train` killed with SIGKILL mid-run, then `--resume`d, ends with the
/// same trajectory and the same exported weights as a run that was never interrupted — for every
/// optimizer (stateful ones rebuild their state by replay); `zotune replay` writes that same file.
final class KillResumeTests: XCTestCase {
    func testKilledRunResumesToTheSameResult() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let optimizers: [[String]] = [[], ["--optimizer", "zo-sgd-mmt"], ["--optimizer", "zo-adam", "--lr", "1e-4"], ["--optimizer", "zo-sign", "--lr", "1e-4"],
                                      ["--optimizer", "zo-cons"], ["--optimizer", "hizoo", "--hessian-smoothing", "0.1"],
                                      ["--optimizer", "zo-muon", "--ns-steps", "5"], ["--optimizer", "jaguar-sign", "--block-fraction", "0.3"],
                                      ["--optimizer", "jaguar-muon", "--ns-steps", "5", "--orthogonalize-every", "2"],
                                      ["--optimizer", "dizo", "--dizo-interval", "3", "--dizo-iterations", "2"],
                                      ["--optimizer", "zoop", "--zoop-update", "adam"],
                                      // PEFT runs: the adapter is what moves, is exported and is replayed.
                                      ["--peft", "lora"], ["--peft", "prefix", "--optimizer", "zo-adam", "--lr", "1e-3"],
                                      ["--peft", "prompt", "--optimizer", "dizo", "--dizo-interval", "3", "--dizo-iterations", "2"],
                                      // Block-wise runs: records carry their block; the sequential one re-initialises blocks.
                                      ["--blocks", "layer"],
                                      ["--blocks", "attn-mlp", "--block-schedule", "sequential", "--block-steps", "2", "--block-reinit"]]
        for opt in optimizers {
            let name = opt.count > 1 ? opt[1] : "mezo"
            let peft = opt.first == "--peft"
            let exported = peft ? "adapter/adapter_model.safetensors" : "model/model.safetensors"
            let whole = w.root.appendingPathComponent("whole-\(name)"), killed = w.root.appendingPathComponent("killed-\(name)")
            let a = try train(bin, w, opt + ["--out", whole.path])
            a.waitUntilExit()
            XCTAssertEqual(a.terminationStatus, 0, name)

            let b = try train(bin, w, opt + ["--out", killed.path])
            // Kill once a few steps are on disk (the trajectory header records completed steps).
            let traj = killed.appendingPathComponent("trajectory.zot")
            waitForSavedSteps(b, trajectory: traj, atLeast: 5)
            XCTAssertTrue(b.isRunning, "\(name): the run finished before it could be killed")
            kill(b.processIdentifier, SIGKILL)
            b.waitUntilExit()
            XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent(exported).path))

            let c = try train(bin, w, opt + ["--resume", killed.path])
            c.waitUntilExit()
            XCTAssertEqual(c.terminationStatus, 0, name)
            let x = try TrajectoryFile.read(whole.appendingPathComponent("trajectory.zot"))
            let y = try TrajectoryFile.read(killed.appendingPathComponent("trajectory.zot"))
            XCTAssertEqual(x.records, y.records, "\(name): trajectory records differ")
            // Every step recorded; a per-step block-wise run records each block of each step.
            let dirs = x.records.filter { $0.kind == .direction }
            XCTAssertEqual(Set(dirs.map(\.step)).count, 12, name)
            let perStep = opt.first == "--blocks" && !opt.contains("sequential")
            XCTAssertEqual(dirs.count, perStep ? 12 * Set(dirs.map(\.block)).count : 12, name)
            if perStep { XCTAssertGreaterThan(Set(dirs.map(\.block)).count, 1, name) }
            let mx = try Data(contentsOf: whole.appendingPathComponent(exported))
            let my = try Data(contentsOf: killed.appendingPathComponent(exported))
            XCTAssertTrue(mx == my, "\(name): exported weights differ after kill + resume")

            // `zotune replay` rebuilds the same file from the base and the trajectory alone
            // (zoop refuses: its steps depend on activations).
            if name == "zoop" {
                XCTAssertEqual(x.header.replayable, false)
                continue
            }
            let replayed = w.root.appendingPathComponent("replayed-\(name)")
            XCTAssertEqual(try replay(bin, base: w.model, trajectory: whole.appendingPathComponent("trajectory.zot"), out: replayed), 0, name)
            let replayedFile = replayed.appendingPathComponent(peft ? "adapter_model.safetensors" : "model.safetensors")
            XCTAssertTrue(try Data(contentsOf: replayedFile) == mx, "\(name): replay differs from the trained export")
        }
    }

    // `zotune pretrain` killed mid-run and resumed: the same records and exported model as the
    // uninterrupted run; `zotune replay --base RUN/init` writes that model too.
    func testKilledPretrainResumesToTheSameResult() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let corpus = w.root.appendingPathComponent("corpus.txt")
        try (0..<12).map { "The river rises in the hills and runs south to the sea past farm \($0), where the water is slow and clear." }
            .joined(separator: "\n\n").write(to: corpus, atomically: true, encoding: .utf8)
        func pretrain(_ args: [String]) throws -> Process {
            let p = Process()
            p.executableURL = bin
            p.arguments = ["pretrain", "--corpus", corpus.path, "--held-out-every", "4", "--tokenizer", w.model.appendingPathComponent("tokenizer.json").path,
                           "--layers", "2", "--hidden", "32", "--heads", "4", "--seq-len", "16", "--batch-size", "4", "--steps", "30",
                           "--eval-every", "5", "--lr", "1e-3", "--eps", "1e-2", "--save-every", "1", "--blocks", "layer", "--device", "cpu"] + args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        let whole = w.root.appendingPathComponent("whole"), killed = w.root.appendingPathComponent("killed")
        let a = try pretrain(["--out", whole.path])
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)
        let b = try pretrain(["--out", killed.path])
        let traj = killed.appendingPathComponent("trajectory.zot")
        waitForSavedSteps(b, trajectory: traj, atLeast: 5, poll: 5_000)
        XCTAssertTrue(b.isRunning, "the run finished before it could be killed")
        kill(b.processIdentifier, SIGKILL)
        b.waitUntilExit()
        let c = try pretrain(["--resume", killed.path])
        c.waitUntilExit()
        XCTAssertEqual(c.terminationStatus, 0)
        let x = try TrajectoryFile.read(whole.appendingPathComponent("trajectory.zot"))
        XCTAssertEqual(x.records, try TrajectoryFile.read(traj).records)
        XCTAssertEqual(x.header.blocks?.level, .layer)
        let model = try Data(contentsOf: whole.appendingPathComponent("model/model.safetensors"))
        XCTAssertTrue(model == (try Data(contentsOf: killed.appendingPathComponent("model/model.safetensors"))), "exported models differ")
        XCTAssertFalse(model == (try Data(contentsOf: whole.appendingPathComponent("init/model.safetensors"))), "nothing trained")
        let replayed = w.root.appendingPathComponent("replayed")
        XCTAssertEqual(try replay(bin, base: whole.appendingPathComponent("init"), trajectory: whole.appendingPathComponent("trajectory.zot"), out: replayed), 0)
        XCTAssertTrue(try Data(contentsOf: replayed.appendingPathComponent("model.safetensors")) == model, "replay differs from the trained export")
    }

    // An option of another optimizer, or an unknown optimizer, is refused before any work, naming it.
    func testOptimizerOptionsAreValidated() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        for (args, message) in [(["--optimizer", "zo-adam", "--momentum", "0.5"], "--momentum is an option of --optimizer zo-sgd-mmt/zo-muon/jaguar-sign/lozo, not zo-adam"),
                                (["--optimizer", "zo-lion"], "--optimizer must be one of"),
                                (["--optimizer", "zo-muon", "--orthogonalize-every", "2"], "--orthogonalize-every is an option of --optimizer jaguar-muon"),
                                (["--optimizer", "jaguar-sign", "--momentum", "0.5"], "belong to --jaguar-variant released"),
                                (["--optimizer", "jaguar-muon", "--block-fraction", "1.5"], "--block-fraction must be in (0, 1]"),
                                (["--optimizer", "zo-cons", "--weight-decay", "0.1"], "not available with zo-cons"),
                                (["--peft", "lora", "--optimizer", "zoop"], "does not combine with --peft"),
                                (["--lora-rank", "4"], "--lora-rank is an option of --peft lora, not none"),
                                (["--peft", "prefix", "--prompt-tokens", "4"], "--prompt-tokens is an option of --peft prompt, not prefix"),
                                (["--peft", "adapters"], "--peft must be none, lora, prefix or prompt"),
                                (["--peft", "lora", "--lora-targets", "qq"], "no linear layer matches"),
                                (["--block-steps", "3"], "need --blocks"),
                                (["--blocks", "rows"], "--blocks must be none, layer"),
                                (["--blocks", "layer", "--block-reinit"], "apply to --block-schedule sequential"),
                                (["--blocks", "patterns", "--block-patterns", "layers.0."], "matches none of the block patterns"),
                                (["--blocks", "layer", "--optimizer", "zoop"], "cannot run block-wise")] {
            try expectRefusal(bin, ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path,
                                    "--out", w.root.appendingPathComponent("x").path] + args, message)
        }
    }

    /// Runs `args`; the command must fail with `message` on stderr.
    func expectRefusal(_ bin: URL, _ args: [String], _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, text) = try runCapturing(bin, args)
        XCTAssertNotEqual(status, 0, "\(args)", file: file, line: line)
        XCTAssertTrue(text.contains(message), "\(args): \(text)", file: file, line: line)
    }

    /// Out-of-range run and data options: one line naming the option, before any model is loaded.
    func testRunOptionsAreValidated() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let base = ["train", "--model", w.model.path, "--out", w.root.appendingPathComponent("x").path]
        let sst2 = base + ["--task", "sst2", "--data-dir", w.data.path]
        for (args, message) in [(sst2 + ["--steps", "0"], "--steps must be at least 1"),
                                (sst2 + ["--lr", "nan"], "--lr must be a positive number"),
                                (sst2 + ["--lr=-1e-3"], "--lr must be a positive number"),
                                (sst2 + ["--batch-size", "0"], "--batch-size must be at least 1"),
                                (sst2 + ["--eps", "0"], "--eps must be positive"),
                                (sst2 + ["--max-length", "1"], "--max-length must be at least 2"),
                                (sst2 + ["--eval-count", "0"], "--eval-count must be at least 1"),
                                (sst2 + ["--save-every", "0"], "--save-every must be at least 1"),
                                (sst2 + ["--train-count=-5"], "--train-count must be 0 or more"),
                                (base + ["--task", "nosuch", "--data-dir", w.data.path], "unknown task"),
                                (base + ["--task", "rte", "--data-dir", w.data.path], "no data file found"),
                                (base + ["--task", "rte"], "--data-dir"),
                                (base + ["--task", "custom"], "--task-file"),
                                (sst2 + ["--template", "{text}"], "go with --task custom")] {
            try expectRefusal(bin, args, message)
        }
    }

    /// SIGTERM mid-run: the step finishes, the run is saved, the process exits 143 saying how to
    /// resume, and the resumed run ends where an uninterrupted one does. While it runs, a second
    /// run on the same directory is refused (the lock); once it is dead, the directory is free.
    func testSignalSavesTheRunAndASecondRunIsRefused() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let whole = w.root.appendingPathComponent("whole"), stopped = w.root.appendingPathComponent("stopped")
        // 200 steps (a few seconds): long enough to be signalled and probed while it runs.
        func run(_ out: [String], stderr: Pipe? = nil) throws -> Process {
            try train(bin, w, out, steps: 200, evalEvery: 50, stderr: stderr)
        }
        let a = try run(["--out", whole.path])
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)

        let err = Pipe()
        let b = try run(["--out", stopped.path], stderr: err)
        let traj = stopped.appendingPathComponent("trajectory.zot")
        waitForSavedSteps(b, trajectory: traj, atLeast: 3)
        XCTAssertTrue(b.isRunning, "the run finished before it could be signalled")
        try expectRefusal(bin, ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--resume", stopped.path],
                          "in use by another zotune process (pid \(b.processIdentifier))")
        kill(b.processIdentifier, SIGTERM)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        b.waitUntilExit()
        XCTAssertEqual(b.terminationStatus, 128 + SIGTERM, text)
        XCTAssertTrue(text.contains("stopped by SIGTERM after step") && text.contains("--resume \(stopped.path)"), text)
        let saved = try TrajectoryFile.read(traj)
        XCTAssertLessThan(saved.header.progress.completedSteps, 200)
        XCTAssertEqual(Set(saved.records.map(\.step)).count, saved.header.progress.completedSteps, "the saved run is consistent")

        let c = try run(["--resume", stopped.path])
        c.waitUntilExit()
        XCTAssertEqual(c.terminationStatus, 0)
        let mx = try Data(contentsOf: whole.appendingPathComponent("model/model.safetensors"))
        let my = try Data(contentsOf: stopped.appendingPathComponent("model/model.safetensors"))
        XCTAssertTrue(mx == my, "exported weights differ after SIGTERM + resume")

        // In-process: the lock is exclusive while held and free once released.
        let dir = w.root.appendingPathComponent("locked")
        var held: RunLock? = try RunLock(runDir: dir)
        XCTAssertThrowsError(try RunLock(runDir: dir)) { XCTAssertTrue("\($0)".contains("pid \(getpid())"), "\($0)") }
        withExtendedLifetime(held) {}
        held = nil
        XCTAssertNoThrow(try RunLock(runDir: dir))
    }
}
