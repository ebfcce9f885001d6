import Foundation
import XCTest

/// The bad option values a new user met (issue: "trust on any machine", items 1, 11–13), each
/// with the one line it must now give: exit 64, exactly one `Error:` line naming the option, no
/// usage block. Before the fixes these crashed, ran on silently or said "Missing value".
final class OptionRegressionTests: XCTestCase {
    func testEachReportedBadValueNamesItsOption() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let corpus = w.root.appendingPathComponent("corpus.txt")
        try (0..<6).map { "Document \($0): the river runs south past the farm to the sea." }.joined(separator: "\n\n")
            .write(to: corpus, atomically: true, encoding: .utf8)
        let model = w.model.path
        let train = ["train", "--model", model, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu", "--steps", "1",
                     "--train-count", "4", "--dev-count", "2", "--test-count", "2", "--out", w.root.appendingPathComponent("run").path]
        let pretrain = ["pretrain", "--corpus", corpus.path, "--tokenizer", w.model.appendingPathComponent("tokenizer.json").path,
                        "--layers", "1", "--hidden", "16", "--heads", "2", "--max-positions", "16", "--seq-len", "8", "--steps", "1",
                        "--out", w.root.appendingPathComponent("pre").path]
        let cases: [([String], String)] = [
            (["memory", "--model", model, "--batch-size", "0", "--seq-len", "8"], "--batch-size must be at least 1 (got 0)"),
            (["memory", "--model", model, "--seq-len", "0"], "--seq-len must be at least 1 (got 0)"),
            (["bench", "step", "--model", model, "--seq-len", "0"], "--seq-len must be at least 1 (got 0)"),
            (["bench", "forward", "--model", model, "--batch-size=-1"], "--batch-size must be at least 1 (got -1)"),
            (["generate", "--model", model, "--prompt", "hi", "--temperature", "nan"], "--temperature"),
            (["generate", "--model", model, "--prompt", "hi", "--temperature", "-1"], "--temperature"),
            (["generate", "--model", model, "--prompt", "hi", "--top-p", "2"], "--top-p"),
            (pretrain + ["--held-out-every", "0"], "--held-out-every must be at least 2 (got 0)"),
            (pretrain + ["--held-out-every", "1"], "--held-out-every must be at least 2 (got 1)"),
            (pretrain + ["--objective", "lm"], "--objective is a train option"),
            (pretrain + ["--max-length", "64"], "--max-length is a train option"),
            (train + ["--lr", "-1"], "--lr must be a positive number (got -1"),
            (train + ["--threads", "0"], "--threads must be in 1…256 (got 0)"),
            (train + ["--threads", "-1"], "--threads must be in 1…256 (got -1)"),
        ]
        for (args, expected) in cases {
            let (status, err) = try runCapturing(bin, args)
            let name = args.prefix(2).joined(separator: " ") + " … " + expected
            XCTAssertEqual(status, 64, "\(name): \(err)")
            let errors = err.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            XCTAssertEqual(errors.count, 1, "\(name): \(err)")
            XCTAssertTrue(errors.first?.contains(expected) == true, "\(name): \(err)")
            XCTAssertFalse(err.contains("USAGE:") || err.contains("Missing value"), "\(name): \(err)")
        }
    }
}
