import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// A resumed run is the same run or is refused (naming the option and both values); no run is
/// lost or changed without a word: `--resume` needs a run, `--out` over a run needs
/// `--overwrite`, a finished run resumed changes nothing; file-system failures are one line.
final class RunDirectoryTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()
    let config = OptimizerConfig.mezo(MeZOOptions(eps: 1e-2))
    let base = BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32", precision: "f32")
    static let dataOptions = ["--train-count": "8", "--dev-count": "4", "--test-count": "4"]

    func options(steps: Int = 10, evalEvery: Int = 4) -> RunOptions {
        RunOptions(task: "tiny", steps: steps, batchSize: 4, lr: 1e-3, schedule: .linear, warmupSteps: 1, evalEvery: evalEvery, evalCount: 3,
                   seed: 7, dataSeed: 3, saveEvery: 2, maxLength: 64)
    }

    func trainer(_ dir: URL, options: RunOptions? = nil, config: OptimizerConfig? = nil, base: BaseCheckpoint? = nil,
                 splits: TaskSplits? = nil, data: [String: String] = dataOptions) throws -> Trainer {
        let lm = try tinyModel(), s = splits ?? tinySplits()
        let t = try Trainer(model: lm, tokenizer: try tokenizer(), splits: s, options: options ?? self.options(),
                            optimizer: try (config ?? self.config).make(set: TrainableSet.full(lm), backend: backend), runDir: dir, base: base ?? self.base)
        t.dataFingerprint = DataFingerprint(options: data, contentHash: s.contentHash)
        return t
    }

    /// Every option that changes the run's updates, data or report refuses the resume, naming the
    /// option as typed and the run's and today's values; the run's own options resume.
    func testResumeRefusesEveryOptionThatChangesTheRun() throws {
        let dir = tempDir()
        XCTAssertThrowsError(try trainer(dir).run(stopAfter: 2)) { XCTAssertTrue($0 is RunInterrupted) }
        func variant(_ change: (inout RunOptions) -> Void) -> RunOptions { var o = options(); change(&o); return o }
        let other = tinySplits()
        let changedSplits = TaskSplits(task: other.task, train: Array(other.train.reversed()), dev: other.dev, test: other.test, notes: [])
        var otherBase = base; otherBase.hash = "other"
        var bf16 = base; bf16.dtype = "bf16"
        var mixed = base; mixed.precision = "mixed"
        let cases: [(String, String, String, () throws -> Trainer)] = [
            ("--task", "tiny", "tiny2", { try self.trainer(dir, options: variant { $0.task = "tiny2" }) }),
            ("--steps", "10", "12", { try self.trainer(dir, options: self.options(steps: 12)) }),
            ("--batch-size", "4", "2", { try self.trainer(dir, options: variant { $0.batchSize = 2 }) }),
            ("--lr", "0.001", "0.002", { try self.trainer(dir, options: variant { $0.schedule.lr = 2e-3 }) }),
            ("--schedule", "linear", "cosine", { try self.trainer(dir, options: variant { $0.schedule.kind = .cosine }) }),
            ("--warmup", "1", "0", { try self.trainer(dir, options: variant { $0.schedule.warmupSteps = 0 }) }),
            ("--objective", "ce", "lm", { try self.trainer(dir, options: variant { $0.objective = .lmLoss }) }),
            ("--eval-every", "4", "5", { try self.trainer(dir, options: self.options(evalEvery: 5)) }),
            ("--eval-count", "3", "all", { try self.trainer(dir, options: variant { $0.evalCount = nil }) }),
            ("--seed", "7", "8", { try self.trainer(dir, options: variant { $0.seed = 8 }) }),
            ("--data-seed", "3", "4", { try self.trainer(dir, options: variant { $0.dataSeed = 4 }) }),
            ("--save-every", "2", "3", { try self.trainer(dir, options: variant { $0.saveEvery = 3 }) }),
            ("--max-length", "64", "32", { try self.trainer(dir, options: variant { $0.maxLength = 32 }) }),
            ("--keep-last", "off", "on", { try self.trainer(dir, options: variant { $0.keepBest = false }) }),
            ("optimizer mezo eps", "0.01", "0.02", { try self.trainer(dir, config: .mezo(MeZOOptions(eps: 2e-2))) }),
            ("--optimizer", "mezo", "zo-adam", { try self.trainer(dir, config: .zoAdam(ZOAdamOptions(eps: 1e-2))) }),
            ("--model", "tiny (content hash test)", "tiny (content hash other)", { try self.trainer(dir, base: otherBase) }),
            ("--dtype", "f32", "bf16", { try self.trainer(dir, base: bf16) }),
            ("--precision", "f32", "mixed", { try self.trainer(dir, base: mixed) }),
            ("--train-count", "8", "16", { try self.trainer(dir, data: Self.dataOptions.merging(["--train-count": "16"]) { $1 }) }),
            ("--template", "unset", "{text} It was", { try self.trainer(dir, data: Self.dataOptions.merging(["--template": "{text} It was"]) { $1 }) }),
            ("data (content hash of the examples)", other.contentHash, changedSplits.contentHash, { try self.trainer(dir, splits: changedSplits) }),
        ]
        XCTAssertNotEqual(other.contentHash, changedSplits.contentHash)
        for (option, was, now, make) in cases {
            XCTAssertThrowsError(try make().run(resume: true), option) { error in
                guard let m = error as? ResumeMismatch else { return XCTFail("\(option): \(error)") }
                XCTAssertEqual(m.option, option)
                XCTAssertEqual(m.was, was, option)
                XCTAssertEqual(m.now, now, option)
                XCTAssertTrue(m.description.contains(option) && m.description.contains(was), m.description)
            }
        }
        XCTAssertEqual(try trainer(dir).run(resume: true).steps, 10)
    }

    /// A run whose steps were all done but whose ending (final evaluation, test, export) was not
    /// written runs the ending again without writing its lines twice.
    func testResumingAtTheEndWritesEachLineOnce() throws {
        for evalEvery in [0, 4] {
            let whole = tempDir(), again = tempDir()
            _ = try trainer(whole, options: options(evalEvery: evalEvery)).run()
            _ = try trainer(again, options: options(evalEvery: evalEvery)).run()
            let summary = try trainer(again, options: options(evalEvery: evalEvery)).run(resume: true)
            XCTAssertEqual(summary.steps, 10)
            let a = try String(contentsOf: whole.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            let b = try String(contentsOf: again.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            // train_seconds differ between the runs: compare the lines without it.
            func strip(_ s: String) -> [String] { s.split(separator: "\n").map { $0.replacingOccurrences(of: #","train_seconds":[0-9.e-]+"#, with: "", options: .regularExpression) } }
            XCTAssertEqual(strip(a), strip(b), "evalEvery \(evalEvery)")
            XCTAssertEqual(strip(b).filter { $0.contains("test_accuracy") }.count, 1)
        }
    }

    func testRunDirectoryChoices() throws {
        let root = tempDir()
        // --resume needs a run.
        for path in [root.appendingPathComponent("missing").path, tempDir().path] {
            XCTAssertThrowsError(try RunDirectory(out: nil, resume: path, overwrite: false)) {
                XCTAssertTrue("\($0)".contains("no run to resume") && "\($0)".contains("--out \(path)"), "\($0)")
            }
        }
        XCTAssertThrowsError(try trainer(tempDir()).run(resume: true)) { XCTAssertTrue("\($0)".contains("no run to resume"), "\($0)") }
        XCTAssertThrowsError(try RunDirectory(out: nil, resume: nil, overwrite: false)) { XCTAssertTrue("\($0)".contains("--out DIR"), "\($0)") }
        XCTAssertThrowsError(try RunDirectory(out: root.appendingPathComponent("a").path, resume: root.appendingPathComponent("b").path, overwrite: false)) {
            XCTAssertTrue("\($0)".contains("different run directories"), "\($0)")
        }

        // --out over an interrupted run needs --resume or --overwrite; --overwrite removes only the run's files.
        let run = root.appendingPathComponent("run")
        XCTAssertThrowsError(try trainer(run).run(stopAfter: 2))
        try "mine".write(to: run.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RunDirectory(out: run.path, resume: nil, overwrite: false)) {
            XCTAssertTrue("\($0)".contains("stopped after step 2 of 10") && "\($0)".contains("--resume \(run.path)") && "\($0)".contains("--overwrite"), "\($0)")
        }
        XCTAssertEqual(try RunDirectory(out: run.path, resume: run.path, overwrite: false).state, .resume)
        do {
            let d = try RunDirectory(out: run.path, resume: nil, overwrite: true)
            XCTAssertEqual(d.state, .fresh)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path).filter { !$0.hasPrefix(".") }.sorted(), ["notes.txt"])

        // A finished run: resume has nothing to do; --out over it names it finished.
        let done = root.appendingPathComponent("done")
        let t = try trainer(done)
        _ = try t.run()
        XCTAssertEqual(try RunDirectory(out: nil, resume: done.path, overwrite: false).state, .resume, "steps done, ending not marked")
        try t.markFinished()
        guard case .finished(let p) = try RunDirectory(out: nil, resume: done.path, overwrite: false).state else { return XCTFail("not finished") }
        XCTAssertEqual(p.completedSteps, 10)
        XCTAssertThrowsError(try RunDirectory(out: done.path, resume: nil, overwrite: false)) { XCTAssertTrue("\($0)".contains("finished run"), "\($0)") }

        // A path through a file: one line naming the file.
        let file = root.appendingPathComponent("file")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        for path in [file.path, file.appendingPathComponent("sub").path] {
            XCTAssertThrowsError(try RunDirectory(out: path, resume: nil, overwrite: false)) {
                XCTAssertEqual("\($0)", "\(file.path): exists and is not a directory")
            }
        }
    }

    /// Foundation's file errors become "path: cause".
    func testFoundationFileErrorsAreOneLine() {
        let cases: [(Error, String)] = [
            (CocoaError(.fileWriteOutOfSpace, userInfo: [NSFilePathErrorKey: "/r/model.safetensors"]), "/r/model.safetensors: no space left on the device"),
            (CocoaError(.fileWriteVolumeReadOnly, userInfo: [NSFilePathErrorKey: "/r"]), "/r: read-only file system"),
            (CocoaError(.fileWriteFileExists, userInfo: [NSFilePathErrorKey: "/r"]), "/r: already exists"),
            (NSError(domain: NSCocoaErrorDomain, code: 512, userInfo: [NSFilePathErrorKey: "/r/x",
                                                                       NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(EACCES))]),
             "/r/x: " + String(cString: strerror(EACCES))),
        ]
        for (error, line) in cases { XCTAssertEqual(FileError.describe(error), line) }
        XCTAssertNil(FileError.describe(RunDirectoryError("x")))
    }
}

/// The same through the real `zotune` binary on the tiny model.
final class RunDirectoryCLITests: XCTestCase {
    /// What a user sees: a finished run resumed, or run into again, is left byte for byte as it was;
    /// file-system failures print one line naming the path (no NSError text).
    func testFinishedRunIsNotChangedAndErrorsAreOneLine() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let run = w.root.appendingPathComponent("run")
        let a = try train(bin, w, ["--out", run.path])
        a.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0)
        let names = ["summary.json", "metrics.jsonl", "trajectory.zot", "model/model.safetensors"]
        let before = try names.map { try Data(contentsOf: run.appendingPathComponent($0)) }
        let resumed = try train(bin, w, ["--resume", run.path])
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        let (again, text) = try runCapturing(bin, trainArguments(w) + ["--out", run.path])
        XCTAssertNotEqual(again, 0)
        XCTAssertTrue(text.contains("holds a finished run") && text.contains("--overwrite"), text)
        XCTAssertEqual(try names.map { try Data(contentsOf: run.appendingPathComponent($0)) }, before, "the finished run changed")

        let file = w.root.appendingPathComponent("a-file")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        let (status, err) = try runCapturing(bin, trainArguments(w) + ["--out", file.path])
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(err.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.map(String.init),
                       "Error: \(file.path): exists and is not a directory", err)
        XCTAssertFalse(err.contains("Domain") || err.contains("NSCocoa"), err)

        let readOnly = try smallFilesystem(self, kib: 64, readOnly: true)
        let (roStatus, roErr) = try runCapturing(bin, trainArguments(w) + ["--out", readOnly.appendingPathComponent("run").path])
        XCTAssertNotEqual(roStatus, 0)
        XCTAssertTrue(roErr.contains("\(readOnly.path)/run: cannot create the directory: Read-only file system"), roErr)
        XCTAssertFalse(roErr.contains("Domain") || roErr.contains("NSCocoa"), roErr)
    }

    func trainArguments(_ w: (model: URL, data: URL, root: URL)) -> [String] {
        ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
         "--steps", "12", "--batch-size", "4", "--lr", "1e-3", "--eps", "1e-2", "--eval-every", "4",
         "--train-count", "6", "--dev-count", "3", "--test-count", "3", "--save-every", "1", "--seed", "5"]
    }
}
