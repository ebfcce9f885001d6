import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

/// The CUDA backend held to the CPU backend through the same Swift API. These run only where
/// `--device cuda` would work (the library loads and reports a device); elsewhere they are
/// skipped with the reason, never passed.
final class CUDABackendTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/models")

    func cuda() throws -> KernelBackend {
        var env = ProcessInfo.processInfo.environment
        if env["ZOTUNE_CUDA_LIB"] == nil {
            let built = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../Kernels/build/libzotune_cuda.so").standardized.path
            if FileManager.default.fileExists(atPath: built) { env["ZOTUNE_CUDA_LIB"] = built }
        }
        do {
            return try DeviceSelection.select(.cuda, environment: env).backend
        } catch {
            throw XCTSkip("no CUDA device: \(error)")
        }
    }

    // The z stream is bit-identical on both devices, for every storage dtype and a non-aligned view.
    func testPerturbationStreamBitIdenticalToCPU() throws {
        let gpu = try cuda(), cpu = KernelBackend.cpu()
        for dtype in [DType.f32, .bf16, .f16] {
            let n = 1_000_003
            let a = try cpu.allocate([n], dtype: dtype, tag: .weights), b = try gpu.allocate([n], dtype: dtype, tag: .weights)
            for be in [cpu, gpu] as [KernelBackend] {
                let t = be === cpu ? a : b
                be.fillNormal(t, seed: 11, tensorId: 3, stream: 0, scale: 0.02)
                be.perturb(t.flatSlice(5, n - 9), seed: 12, tensorId: 4, stream: 0, scale: 1e-3)
                be.restoreUpdate(t, seed: 12, tensorId: 4, stream: 0, restore: -1e-3, step: 3e-4, decay: 1e-5)
                be.replayStep(t, seed: 13, tensorId: 4, stream: 1, a1: 1e-3, a2: -2e-3, restore: 1e-3, step: 1e-4, decay: 0)
            }
            var ha = [UInt8](repeating: 0, count: a.bytes), hb = ha
            ha.withUnsafeMutableBytes { cpu.copy(a, toHost: $0) }
            hb.withUnsafeMutableBytes { gpu.copy(b, toHost: $0) }
            XCTAssertTrue(ha == hb, "\(dtype): device bits differ from the CPU's")
        }
    }

    // A whole forward on the GPU (cuBLAS GEMMs, device attention) against the CPU's logits.
    func testTinyLlamaForwardMatchesCPU() throws {
        let gpu = try cuda()
        let ckpt = try HFCheckpoint(path: Self.fixtures.appendingPathComponent("llama").path)
        let onCPU = try CausalLM(config: ckpt.config, reader: ckpt, backend: KernelBackend.cpu())
        let onGPU = try CausalLM(config: ckpt.config, reader: ckpt, backend: gpu)
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7], [3, 4]], padId: 0)
        let a = onCPU.backend.toHost(try onCPU.allLogits(batch)), b = gpu.toHost(try onGPU.allLogits(batch))
        let worst = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-4, "max |Δlogit| between devices")   // f32 GEMMs (TF32 off)
    }
}
