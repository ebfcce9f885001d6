import Foundation
import XCTest

/// What the CLI reports, against what is on disk or what must hold by construction.
final class CLIReportTests: XCTestCase {
    /// Runs the binary; exit status, stdout and stderr.
    func runAll(_ bin: URL, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = bin
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // stderr is a few lines here: reading stdout to its end first cannot block the child.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let r = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: r, as: UTF8.self))
    }

    /// `inspect DIR` reports the bytes of the directory's weight files, not the directory's inode.
    func testInspectOfADirectoryCountsItsWeightFiles() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let r = try runAll(bin, ["inspect", w.model.path])
        XCTAssertEqual(r.status, 0, r.err)
        let size = try FileManager.default.attributesOfItem(atPath: w.model.appendingPathComponent("model.safetensors").path)[.size] as! Int
        XCTAssertTrue(r.out.contains("file bytes     \(size) "), r.out)
    }

    /// First-order fine-tuning of a LoRA adapter still holds the frozen base and every layer's
    /// activations: its estimate cannot be below an inference-only forward (which holds the same
    /// weights and less activation memory). One token keeps the activations small, so an estimate
    /// without the base (16 B × 1,792 adapter parameters + activations ≈ 37 KB) falls below the
    /// 205 KB of weights, as it did.
    func testMemoryEstimateOfAnAdapterIncludesTheFrozenBase() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        for peft in [[], ["--peft", "lora"], ["--peft", "prefix"]] {
            let r = try runAll(bin, ["memory", "--model", w.model.path, "--device", "cpu", "--batch-size", "1", "--seq-len", "1", "--json"] + peft)
            XCTAssertEqual(r.status, 0, r.err)
            let o = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
            let fo = o["fo_adam_bytes"] as! Int, inference = o["inference_peak_bytes"] as! Int, weights = o["weight_bytes"] as! Int
            XCTAssertGreaterThan(fo, inference, "\(peft)")
            XCTAssertGreaterThan(fo, weights, "\(peft)")
        }
    }

    /// A run needs a dev split (dev accuracy before and after, the best step): --dev-count 0 is
    /// refused naming the option, and nothing is exported.
    func testTrainWithoutDevExamplesIsRefused() throws {
        let bin = try binary()
        let w = try workspace()
        defer { try? FileManager.default.removeItem(at: w.root) }
        let run = w.root.appendingPathComponent("run")
        let r = try runAll(bin, ["train", "--model", w.model.path, "--task", "sst2", "--data-dir", w.data.path, "--device", "cpu",
                                 "--steps", "2", "--batch-size", "2", "--train-count", "6", "--dev-count", "0", "--test-count", "3", "--out", run.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--dev-count") && r.err.contains("dev split"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("model").path))
    }
}
