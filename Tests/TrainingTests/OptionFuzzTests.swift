import Foundation
import XCTest

/// Every numeric option of every command, given 0, −1, NaN, ∞ and huge values on an otherwise valid
/// command line (the tiny model): the binary ends cleanly. A refusal is exit 64 or 1 with one
/// `Error:` line; an accepted value exits 0 having done the command's job, or (for the options
/// that count work, such as --steps) is still working when the case's time is up. Never a signal,
/// a Swift runtime trap or an NSError dump. Commands and options come from the binary's own
/// `--experimental-dump-help`, so a new option is fuzzed without editing this file.
final class OptionFuzzTests: XCTestCase {
    /// The bad values of a float option: zero, a negative (as a separate token: `--opt -1`), NaN, ∞
    /// and a huge value.
    static let floatValues = ["0", "-1", "nan", "inf", "1e30"]
    /// Of an integer option: zero, a negative and Int.max. NaN, ∞ and 1e30 stop in ArgumentParser's
    /// integer parsing, the same for every option: one integer option per command gets them (the
    /// debug build parses train's command line in about a second, so every case counts).
    static let integerValues = ["0", "-1", "9223372036854775807"]
    static let nonIntegers = ["nan", "inf", "1e30"]
    /// Float options without a default (with one, the default's decimal point says so).
    static let floatWithoutDefault: Set<String> = [
        "lr", "eps", "momentum", "beta1", "beta2", "adam-eps", "hessian-smoothing", "other-lr-ratio", "beta", "block-fraction",
        "dizo-eps", "dizo-step", "dizo-clip", "lora-alpha", "weight-decay", "min-std", "sparsity", "anchor-lr-scale",
    ]

    /// Options without a default value that take numbers (an option with a numeric default is
    /// recognised from the dump).
    static let numericWithoutDefault: Set<String> = [
        "lr", "threads", "eval-count", "eps", "directions", "momentum", "beta1", "beta2", "adam-eps", "hessian-smoothing",
        "ns-steps", "other-lr-ratio", "orthogonalize-every", "beta", "block-fraction", "dizo-interval", "dizo-iterations",
        "dizo-eps", "dizo-step", "dizo-clip", "lora-rank", "lora-alpha", "prefix-tokens", "prompt-tokens", "block-steps",
        "kv-heads", "intermediate", "run-seed", "seed", "zoop-blocks", "max-length", "weight-decay",
        "probes", "min-std", "sparsity", "anchor-every", "anchor-batches", "anchor-lr-scale", "rank", "sliding-window", "window", "refresh-every",
    ]
    /// Options without a default that take text (paths, names, lists of names).
    static let textWithoutDefault: Set<String> = [
        "model", "task", "data-dir", "task-file", "train-file", "dev-file", "test-file", "template", "labels", "device",
        "ns-polynomial", "momentum-placement", "jaguar-variant", "dizo-layers", "zoop-layers", "zoop-update", "lora-targets",
        "block-patterns", "out", "resume", "corpus", "tokenizer", "config", "base", "trajectory", "adapter", "prompt", "text",
        "name", "optimizers", "objective", "optimizer", "dtype", "precision", "grid", "cell", "model-config", "init-from", "freeze",
    ]
    /// Options whose huge value is a legitimately long job: still running at the deadline is a pass.
    /// (mezo-svrg's anchor step runs --anchor-batches minibatch forwards.)
    static let workCounts: Set<String> = ["steps", "repeats", "anchor-batches"]

    /// What else an option needs on the command line to be used at all (its optimizer, adapter, schedule).
    static let context: [String: [String]] = [
        "directions": ["--optimizer", "mezo"],
        "momentum": ["--optimizer", "zo-sgd-mmt"],
        "beta1": ["--optimizer", "zo-adam"], "beta2": ["--optimizer", "zo-adam"], "adam-eps": ["--optimizer", "zo-adam"],
        "hessian-smoothing": ["--optimizer", "hizoo"],
        "ns-steps": ["--optimizer", "zo-muon"], "other-lr-ratio": ["--optimizer", "zo-muon"],
        "orthogonalize-every": ["--optimizer", "jaguar-muon"],
        "beta": ["--optimizer", "jaguar-sign"], "block-fraction": ["--optimizer", "jaguar-sign"],
        "dizo-interval": ["--optimizer", "dizo"], "dizo-iterations": ["--optimizer", "dizo"], "dizo-eps": ["--optimizer", "dizo"],
        "dizo-step": ["--optimizer", "dizo"], "dizo-clip": ["--optimizer", "dizo"],
        "zoop-blocks": ["--optimizer", "zoop"],
        "probes": ["--optimizer", "fzoo"], "min-std": ["--optimizer", "fzoo"], "sparsity": ["--optimizer", "sparse-mezo"],
        "anchor-every": ["--optimizer", "mezo-svrg"], "anchor-batches": ["--optimizer", "mezo-svrg"],
        "anchor-lr-scale": ["--optimizer", "mezo-svrg"], "rank": ["--optimizer", "lowrank-spsa"],
        "window": ["--optimizer", "lozo"], "refresh-every": ["--optimizer", "subzero"],
        "lora-rank": ["--peft", "lora"], "lora-alpha": ["--peft", "lora"],
        "prefix-tokens": ["--peft", "prefix"], "prompt-tokens": ["--peft", "prompt"],
        "block-steps": ["--blocks", "layer", "--block-schedule", "sequential"],
    ]
    /// Per command, context that differs from the above.
    static let commandContext: [String: [String: [String]]] = [
        "bench optimizers": ["ns-steps": ["--optimizers", "zo-muon"], "orthogonalize-every": ["--optimizers", "jaguar-muon"]],
        "stream": ["steps": ["--run-seed", "1"], "run-seed": []],
        "bench lowrank": ["rank": []],
    ]
    /// Options whose code train and pretrain share (OptimizerArgumentGroups, RunArguments, BlockArguments):
    /// fuzzed in train only, to keep the test short.
    static let fuzzedInTrainOnly: Set<String> = [
        "lr", "eval-every", "eval-count", "seed", "warmup", "save-every", "eps", "weight-decay", "directions", "momentum",
        "beta1", "beta2", "adam-eps", "hessian-smoothing", "ns-steps", "other-lr-ratio", "orthogonalize-every", "beta",
        "block-fraction", "dizo-interval", "dizo-iterations", "dizo-eps", "dizo-step", "dizo-clip", "zoop-blocks", "block-steps",
        "probes", "min-std", "sparsity", "anchor-every", "anchor-batches", "anchor-lr-scale", "rank", "window", "refresh-every",
    ]

    struct Case {
        var command: [String]
        var option: String
        var value: String
        var arguments: [String]
        var out: URL
    }

    /// The outcomes, filled in by the workers.
    final class Results: @unchecked Sendable {
        private var items: [Outcome?]
        private let lock = NSLock()
        init(count: Int) { items = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ o: Outcome) { lock.lock(); items[i] = o; lock.unlock() }
        var all: [Outcome?] { lock.lock(); defer { lock.unlock() }; return items }
    }

    struct Outcome {
        var status: Int32
        var signalled: Bool
        var timedOut: Bool
        var stdout: String
        var stderr: String
        var seconds: Double
    }

    func testEveryNumericOptionTakesBadValuesCleanly() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let tokenizer = w.model.appendingPathComponent("tokenizer.json").path
        let corpus = w.root.appendingPathComponent("corpus.txt")
        try (0..<8).map { "The river rises in the hills and runs south to the sea past farm \($0), where the water is slow." }
            .joined(separator: "\n\n").write(to: corpus, atomically: true, encoding: .utf8)

        // A finished LoRA run: the trajectory replay reads and the adapter merge folds in.
        let run = w.root.appendingPathComponent("lora-run")
        let trained = try runCapturing(bin, ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                                             "--steps", "2", "--batch-size", "2", "--train-count", "4", "--dev-count", "2", "--test-count", "2",
                                             "--peft", "lora", "--out", run.path])
        XCTAssertEqual(trained.status, 0, trained.stderr)

        // A one-step run file for sweep.
        let sweepBase = w.root.appendingPathComponent("sweep-base.json")
        try Data(#"{"model": "\#(w.model.path)", "task": "sst2", "data-dir": "\#(w.data.path)", "steps": 1, "batch-size": 2, "train-count": 4, "dev-count": 2, "test-count": 2, "max-length": 32}"#.utf8).write(to: sweepBase)

        // The otherwise valid, small command line of each command; OUT is a fresh path per case.
        let tinyTrain = ["--steps", "1", "--batch-size", "2", "--eval-count", "2"]
        let base: [String: [String]] = [
            "train": ["--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--train-count", "4", "--dev-count", "2",
                      "--test-count", "2", "--max-length", "32", "--out", "OUT"] + tinyTrain,
            "pretrain": ["--corpus", corpus.path, "--tokenizer", tokenizer, "--held-out-every", "2", "--layers", "1", "--hidden", "16",
                         "--heads", "2", "--max-positions", "16", "--seq-len", "8", "--out", "OUT"] + tinyTrain,
            "eval": ["--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--train-count", "4", "--dev-count", "2",
                     "--test-count", "2", "--max-length", "32"],
            "replay": ["--base", w.model.path, "--trajectory", run.appendingPathComponent("trajectory.zot").path, "--out", "OUT"],
            "merge": ["--model", w.model.path, "--adapter", run.appendingPathComponent("adapter").path, "--out", "OUT"],
            "memory": ["--model", w.model.path, "--batch-size", "1", "--seq-len", "4"],
            "generate": ["--model", w.model.path, "--prompt", "hi", "--max-tokens", "2"],
            "logits": ["--model", w.model.path, "--text", "hi"],
            "stream": ["--name", "w", "--count", "8", "--seed", "1", "--out", "OUT"],
            "devices": [],
            "sweep": ["--config", sweepBase.path, "--grid", "lr=1e-3", "--out", "OUT"],
            "bench kernels": ["--elements", "4096", "--repeats", "1"],
            "bench forward": ["--model", w.model.path, "--batch-size", "1", "--seq-len", "4", "--repeats", "1"],
            "bench step": ["--model", w.model.path, "--batch-size", "1", "--seq-len", "4", "--repeats", "1"],
            "bench optimizers": ["--model", w.model.path, "--batch-size", "1", "--seq-len", "4", "--repeats", "1", "--optimizers", "mezo"],
            "bench lowrank": ["--model", w.model.path, "--batch-size", "1", "--seq-len", "4", "--repeats", "1", "--directions", "1"],
        ]
        let excluded = [
            "mpi-check": "joins an MPI world (mpirun); it has no options",
            "inspect": "takes a path and no options",
            "help": "takes command names",
        ]

        let dump = try runJSON(bin, ["--experimental-dump-help"])
        var cases: [Case] = []
        var unclassified: [String] = []
        for (path, options) in leafCommands(dump["command"] as! [String: Any], path: []) {
            let name = path.joined(separator: " ")
            if excluded[name] != nil { continue }
            guard var line = base[name] else {
                XCTFail("zotune \(name): no minimal command line in OptionFuzzTests.base (add one, or exclude it with a reason)")
                continue
            }
            // Kernels run single-threaded on the CPU: many cases run at once.
            if options.contains(where: { $0.name == "device" }) { line += ["--device", "cpu"] }
            if options.contains(where: { $0.name == "threads" }) { line += ["--threads", "1"] }
            for o in options {
                let numeric = o.defaultValue.map { Double($0) != nil } ?? Self.numericWithoutDefault.contains(o.name)
                if o.defaultValue == nil && !numeric && !Self.textWithoutDefault.contains(o.name) { unclassified.append("\(name) --\(o.name)") }
                guard numeric, !(name == "pretrain" && Self.fuzzedInTrainOnly.contains(o.name)) else { continue }
                var arguments = line
                let extra = Self.commandContext[name]?[o.name] ?? Self.context[o.name] ?? []
                for pair in stride(from: 0, to: extra.count, by: 2) { set(&arguments, extra[pair], extra[pair + 1]) }
                if name == "stream" && ["run-seed", "steps"].contains(o.name) { remove(&arguments, "--seed") }
                let isFloat = o.defaultValue.map { $0.contains(".") } ?? Self.floatWithoutDefault.contains(o.name)
                var values = isFloat ? Self.floatValues : Self.integerValues
                if !isFloat && !cases.contains(where: { $0.command == path && Self.nonIntegers.contains($0.value) }) { values += Self.nonIntegers }
                for value in values {
                    var a = arguments
                    set(&a, "--" + o.name, value)
                    let out = w.root.appendingPathComponent("case-\(cases.count)")
                    cases.append(Case(command: path, option: o.name, value: value, arguments: path + a.map { $0 == "OUT" ? out.path : $0 }, out: out))
                }
            }
        }
        XCTAssertEqual(unclassified, [], "options with no default: list each in numericWithoutDefault or textWithoutDefault")

        // Cases run side by side, each with a deadline.
        let lines = cases.map(\.arguments), root = w.root
        let results = Results(count: cases.count)
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for i in stride(from: worker, to: lines.count, by: 4) {
                results.set(i, Self.execute(bin, lines[i], deadline: 6, scratch: root.appendingPathComponent("io-\(i)")))
            }
        }
        let wall = Date().timeIntervalSince(started)
        let outcomes = results.all

        var table: [String] = []
        for (c, outcome) in zip(cases, outcomes) {
            let o = outcome!
            let what = "zotune \(c.command.joined(separator: " ")) --\(c.option) \(c.value)"
            let text = o.stdout + o.stderr
            let errorLines = o.stderr.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
            table.append(String(format: "%-60@ %5.1f s  %@", what as NSString, o.seconds,
                                o.timedOut ? "running at the deadline" : o.status == 0 ? "ok" : "\(o.status): " + (errorLines.first.map(String.init) ?? o.stderr)))
            XCTAssertFalse(o.signalled, "\(what): killed by signal \(o.status)\n\(o.stderr)")
            for bad in ["Fatal error", "Precondition failed", "precondition", "Assertion failed", "Error Domain", "NSError",
                        "Backtrace", "Thread 0 crashed", "CommandError", "error 1.)"] {
                XCTAssertFalse(text.contains(bad), "\(what): '\(bad)' in the output\n\(o.stderr)")
            }
            XCTAssertFalse(text.contains("is an option of"), "\(what): the option was not used (give it a context in OptionFuzzTests.context)")
            if o.timedOut {
                XCTAssertTrue(Self.workCounts.contains(c.option) && c.value == "9223372036854775807",
                              "\(what): still running after the deadline\n\(o.stdout.suffix(500))")
            } else if o.status == 0 {
                XCTAssertFalse(o.stdout.isEmpty, "\(what): exit 0 with nothing printed")
                if c.arguments.contains(c.out.path) {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: c.out.path), "\(what): exit 0 without writing \(c.out.lastPathComponent)")
                }
                if ["train", "pretrain"].contains(c.command[0]) {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: c.out.appendingPathComponent("summary.json").path), "\(what): no summary.json")
                }
            } else {
                XCTAssertTrue([64, 1].contains(o.status), "\(what): exit status \(o.status)")
                XCTAssertEqual(errorLines.count, 1, "\(what): exit \(o.status) needs one 'Error:' line\n\(o.stderr)")
            }
        }
        let report = w.root.deletingLastPathComponent().appendingPathComponent("zotune-option-fuzz.txt")
        try? (table.joined(separator: "\n") + "\n").write(to: report, atomically: true, encoding: .utf8)
        print("option fuzz: \(cases.count) cases in \(String(format: "%.1f", wall)) s; table in \(report.path)")
    }

    // MARK: - helpers

    struct OptionInfo { var name: String; var defaultValue: String? }

    /// Every command without subcommands, with its options (not flags, not positionals).
    func leafCommands(_ command: [String: Any], path: [String]) -> [(path: [String], options: [OptionInfo])] {
        let here = path.isEmpty ? [] : path
        if let subs = command["subcommands"] as? [[String: Any]], !subs.isEmpty {
            return subs.flatMap { leafCommands($0, path: here + [$0["commandName"] as! String]) }
        }
        let options = (command["arguments"] as? [[String: Any]] ?? []).compactMap { a -> OptionInfo? in
            guard a["kind"] as? String == "option", let name = (a["preferredName"] as? [String: Any])?["name"] as? String else { return nil }
            return OptionInfo(name: name, defaultValue: a["defaultValue"] as? String)
        }
        return [(here, options)]
    }

    func set(_ arguments: inout [String], _ option: String, _ value: String) {
        if let i = arguments.firstIndex(of: option), i + 1 < arguments.count { arguments[i + 1] = value } else { arguments += [option, value] }
    }

    func remove(_ arguments: inout [String], _ option: String) {
        if let i = arguments.firstIndex(of: option) { arguments.removeSubrange(i...(i + 1)) }
    }

    func runJSON(_ bin: URL, _ arguments: [String]) throws -> [String: Any] {
        let p = Process()
        p.executableURL = bin
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// Runs one case with its output in files (no pipe to fill), ending it with SIGTERM (which a
    /// training run answers by saving and exiting) and then SIGKILL after `deadline` seconds.
    static func execute(_ bin: URL, _ arguments: [String], deadline: Double, scratch: URL) -> Outcome {
        let outURL = scratch.appendingPathExtension("out"), errURL = scratch.appendingPathExtension("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = bin
        p.arguments = arguments
        p.standardOutput = try! FileHandle(forWritingTo: outURL)
        p.standardError = try! FileHandle(forWritingTo: errURL)
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"   // a crash is detected by its signal; no slow backtrace
        p.environment = env
        let started = Date()
        do { try p.run() } catch { return Outcome(status: -1, signalled: false, timedOut: false, stdout: "", stderr: "\(error)", seconds: 0) }
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(started) > deadline {
                timedOut = true
                p.terminate()
                let grace = Date()
                while p.isRunning && Date().timeIntervalSince(grace) < 3 { usleep(20_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        p.waitUntilExit()
        let read = { (u: URL) in (try? String(contentsOf: u, encoding: .utf8)) ?? "" }
        return Outcome(status: p.terminationStatus, signalled: !timedOut && p.terminationReason == .uncaughtSignal, timedOut: timedOut,
                       stdout: read(outURL), stderr: read(errURL), seconds: Date().timeIntervalSince(started))
    }
}
