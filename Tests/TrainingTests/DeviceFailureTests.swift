import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// A kernel whose launch fails on a device writes nothing and returns nothing; the CUDA library
/// keeps a sticky error naming it, returned by the next host read. These tests replace one entry
/// of the CPU table by a launcher that fails that way (zt_cpu_api_with_failing) and check that the
/// failure reaches the trainer as an error naming the kernel, never as a loss.
final class DeviceFailureTests: XCTestCase, TinyFixture {
    // Each test makes its own failing backend; the fixture's protocol wants one.
    var backend = KernelBackend.cpu()

    func failing(_ kernel: String) throws -> KernelBackend {
        try XCTUnwrap(KernelBackend.cpuWithFailingKernel(kernel), "the hook cannot replace \(kernel)")
    }

    // A perturbation (non-throwing, list-driven) fails at MeZO's first probe of step 1: the loss
    // read after it throws, naming stream_list, before any step is reported or recorded.
    func testFailedPerturbationEndsTrainingWithTheKernelsName() throws {
        backend = try failing("stream_list")
        let lm = try tinyModel()
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(),
                                  options: RunOptions(task: "tiny", steps: 3, batchSize: 4, lr: 1e-3, schedule: .constant, evalEvery: 0,
                                                      seed: 7, dataSeed: 3, saveEvery: 1, keepBest: false),
                                  optimizer: try OptimizerConfig.mezo(MeZOOptions(eps: 1e-2)).make(set: TrainableSet.full(lm), backend: backend),
                                  runDir: dir, base: BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32"))
        var reports: [StepReport] = []
        XCTAssertThrowsError(try trainer.run(progress: { reports.append($0) })) { error in
            XCTAssertTrue(error is BackendError, "\(type(of: error)): \(error)")
            let line = "\(error)"
            XCTAssertTrue(line.contains("stream_list: invalid configuration argument"), line)
            XCTAssertFalse(line.contains("\n"), "one line: \(line)")
        }
        XCTAssertTrue(reports.isEmpty, "a step was reported with loss \(reports.first.map { "\($0.loss)" } ?? "")")
        XCTAssertTrue(trainer.records.isEmpty, "a step was recorded after the failure")
    }

    // A forward kernel (attention) fails: the loss function throws instead of returning a number,
    // and the failure is still reported by every later check (a failed device stays failed).
    func testFailedForwardKernelThrowsFromTheLoss() throws {
        backend = try failing("attention")
        let lm = try tinyModel()
        let batch = randomTokenBatch(batch: 2, length: 5, vocab: lm.config.vocabSize)
        var loss: Double?
        XCTAssertThrowsError(loss = try languageModelLoss(lm, batch)) { error in
            XCTAssertTrue("\(error)".contains("attention: invalid configuration argument"), "\(error)")
        }
        XCTAssertNil(loss)
        XCTAssertThrowsError(try backend.checkErrors()) { XCTAssertTrue("\($0)".contains("attention"), "\($0)") }
    }

    // The raw path: the failed kernel leaves its output unwritten, the host copy after it comes back
    // as NaN (never the stale bytes), `read` and `checkErrors` throw naming it, and the first failing
    // kernel is the one named when a second fails too.
    func testHostReadAfterAFailedLaunch() throws {
        let b = try failing("rmsnorm")
        let x = try b.tensor([Float](arrayLiteral: 1, 2, 3, 4), shape: [1, 4], tag: .activations)
        let out = try b.tensor([Float](repeating: 7, count: 4), shape: [1, 4], tag: .activations)
        b.rmsNorm(out, x, gamma: nil, eps: 1e-6)
        b.rmsNorm(out, x, gamma: nil, eps: 1e-6)
        XCTAssertTrue(b.toHost(out).allSatisfy { $0.isNaN })
        XCTAssertThrowsError(try b.read(out)) { XCTAssertTrue("\($0)".hasPrefix("CPU failure: rmsnorm: invalid configuration"), "\($0)") }
        // The ordinary CPU table is untouched by the hook.
        let cpu = KernelBackend.cpu()
        let y = try cpu.tensor([Float](arrayLiteral: 3, 4), shape: [1, 2], tag: .activations)
        cpu.rmsNorm(y, y, gamma: nil, eps: 0)
        // x/√(mean x²) = (3, 4)/√12.5 in f32: a square root, a division and two products, each within
        // half an ulp (6e-8 relative) of |y| ≤ 1.14: 1e-6 holds whatever the kernel's order.
        for (got, want) in zip(try cpu.read(y), [3 / 12.5.squareRoot(), 4 / 12.5.squareRoot()]) {
            XCTAssertEqual(Double(got), want, accuracy: 1e-6)
        }
        XCTAssertNil(KernelBackend.cpuWithFailingKernel("no_such_kernel"))
    }
}
