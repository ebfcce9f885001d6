import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// DiZO and Zoop on the CUDA backend against the CPU (run only where a device is available;
/// skipped with the reason elsewhere, never passed).
final class CUDAOptimizerTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    /// `--device cuda` as the CLI resolves it (swift test runs in the package root, where
    /// DeviceSelection finds Kernels/build/libzotune_cuda.so).
    func cuda() throws -> KernelBackend {
        do {
            return try DeviceSelection.select(.cuda).backend
        } catch {
            throw XCTSkip("no CUDA device: \(error)")
        }
    }

    func model(on be: KernelBackend) throws -> CausalLM {
        let ckpt = try HFCheckpoint(path: modelFixtures.appendingPathComponent("models/llama").path)
        return try CausalLM(config: ckpt.config, reader: ckpt, backend: be)
    }

    func hostWeights(_ lm: CausalLM) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for e in TrainableSet.full(lm).entries { out[e.name] = lm.backend.toHost(e.tensor) }
        return out
    }

    // A DiZO run trained on the CPU (searches after steps 2 and 4) replays on the device to the
    // CPU's weights bit for bit: the perturbation, update and projection kernels are twins.
    func testDiZOReplayOnDeviceIsBitIdentical() throws {
        let gpu = try cuda()
        let lm = try model(on: backend)
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7], [3, 4, 8], [9, 9, 100, 2]], padId: 0)
        let dizo = try DiZO(set: .full(lm), options: DiZOOptions(eps: 1e-2, interval: 2, iterations: 2, layers: ["q", "k", "v"]), backend: backend)
        var records: [ZORecord] = []
        for t in 0..<5 {
            records += try dizo.step(StepContext(step: t, runSeed: 3, lr: 1e-3, loss: { try languageModelLoss(lm, batch) },
                                                 searchLoss: { _ in try languageModelLoss(lm, batch) })).records
        }
        XCTAssertEqual(records.filter { $0.kind == .projection }.count, 2 * 6)
        let onGPU = try model(on: gpu)
        try OptimizerConfig.dizo(dizo.options).make(set: .full(onGPU), backend: gpu).replay(records)
        XCTAssertTrue(hostWeights(onGPU) == hostWeights(lm), "DiZO replay on the device differs from the CPU's weights")
    }

    // One Zoop step (SGD and Adam) on each device from the same weights: the per-sample α agree
    // within forward rounding (f32 GEMMs differ in summation order), and so do the updated weights.
    func testZoopStepMatchesCPU() throws {
        let gpu = try cuda()
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7], [3, 4, 8], [9, 9, 100, 2], [7, 7, 7, 7, 7, 7]], padId: 0)
        for update in ZoopOptions.Update.allCases {
            var alphas: [[Float]] = [], results: [[String: [Float]]] = []
            for be in [backend, gpu] {
                let lm = try model(on: be)
                let options = ZoopOptions(eps: 1e-2, update: update)
                let z = try Zoop(model: lm, set: try options.trainableSet(lm), options: options)
                _ = try z.step(StepContext(step: 0, runSeed: 5, lr: 1e-2, loss: { try languageModelLoss(lm, batch) },
                                           scoreSamples: { try sequenceScore(lm, batch) }))
                alphas.append(z.alpha)
                results.append(hostWeights(lm))
            }
            for (a, b) in zip(alphas[0], alphas[1]) { XCTAssertEqual(a, b, accuracy: 2e-2 * (abs(a) + 0.1), "\(update): α") }
            for (name, w) in results[0] {
                let d = zip(w, results[1][name]!).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(d, 1e-3, "\(update): \(name)")
            }
        }
    }
}
