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

    // The fused optimizer updates (momentum, Adam, HiZOO, replayed and not) and HiZOO's probe:
    // θ and the f32 state bit-identical to the CPU after several steps, for every storage dtype.
    func testFusedOptimizerUpdatesBitIdenticalToCPU() throws {
        let gpu = try cuda(), cpu = KernelBackend.cpu()
        let n = 300_007
        for dtype in [DType.f32, .bf16, .f16] {
            for kind in [ZOUpdateKind.momentum, .adam, .hizoo] {
                var bits: [[UInt8]] = []
                for be in [cpu, gpu] as [KernelBackend] {
                    let x = try be.allocate([n], dtype: dtype, tag: .weights)
                    let s1 = try be.allocate([n], dtype: .f32, tag: .optimizer), s2 = try be.allocate([n], dtype: .f32, tag: .optimizer)
                    be.fillNormal(x, seed: 21, tensorId: 5, stream: 0, scale: 0.05)
                    be.fillNormal(s1, seed: 22, tensorId: 5, stream: 0, scale: 0.1)
                    if kind == .hizoo { be.convert(into: s1, from: try be.tensor([Float](repeating: 0.75, count: n), shape: [n], tag: .scratch)) }
                    for t in 0..<3 {
                        var s = ZOUpdateScalars()
                        (s.restore, s.g, s.lr, s.decay, s.beta1, s.beta2, s.adamEps) = (1e-3, 0.37 - Float(t), 1e-3, 1e-6, 0.9, 0.999, 1e-8)
                        (s.bc2Sqrt, s.curvature, s.keep) = (0.05, 0.2, 0.9)
                        if t == 1 { (s.a1, s.a2) = (1e-3, -2e-3) }
                        if kind == .hizoo && t != 1 {
                            be.perturbHessian(x, h: s1, seed: UInt64(30 + t), tensorId: 5, stream: 0, scale: 1e-3)
                            be.perturbHessian(x, h: s1, seed: UInt64(30 + t), tensorId: 5, stream: 0, scale: -2e-3)
                        }
                        be.zoUpdate(kind, x.flatSlice(3, n - 5), state1: s1.flatSlice(3, n - 5), state2: kind == .adam ? s2.flatSlice(3, n - 5) : nil,
                                    seed: UInt64(30 + t), tensorId: 5, stream: 0, scalars: s)
                    }
                    var h = [UInt8](repeating: 0, count: x.bytes + 2 * s1.bytes)
                    h.withUnsafeMutableBytes { buf in
                        be.copy(x, toHost: UnsafeMutableRawBufferPointer(rebasing: buf[0..<x.bytes]))
                        be.copy(s1, toHost: UnsafeMutableRawBufferPointer(rebasing: buf[x.bytes..<(x.bytes + s1.bytes)]))
                        be.copy(s2, toHost: UnsafeMutableRawBufferPointer(rebasing: buf[(x.bytes + s1.bytes)...]))
                    }
                    bits.append(h)
                }
                XCTAssertTrue(bits[0] == bits[1], "\(kind) \(dtype): device θ or state differ from the CPU's")
            }
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

    // The matrix optimizers' passes on the device: ZO-Muon's direction update, add_scaled and the
    // Jaguar probe/passes (both sign modes, replayed and not) bit-identical to the CPU for every
    // storage dtype; Newton–Schulz within f32 rounding (f32 GEMMs) or bf16 rounding (tensor-core
    // operands, 5e-2 relative), and bit-identical run to run (deterministic norm).
    func testMatrixOptimizerPassesMatchCPU() throws {
        let gpu = try cuda(), cpu = KernelBackend.cpu()
        let (rows, cols) = (96, 200)
        for dtype in [DType.f32, .bf16, .f16] {
            var bits: [[UInt8]] = []
            for be in [cpu, gpu] as [KernelBackend] {
                let x = try be.allocate([rows, cols], dtype: dtype, tag: .weights)
                let m = try be.allocate([rows * cols], dtype: .f32, tag: .optimizer), d = try be.allocate([rows, cols], dtype: .f32, tag: .scratch)
                be.fillNormal(x, seed: 41, tensorId: 6, stream: 0, scale: 0.05)
                be.fillNormal(d, seed: 42, tensorId: 6, stream: 0, scale: 0.01)
                var s = ZOUpdateScalars()
                (s.restore, s.lr, s.beta1) = (1e-3, 1e-2, 0.9)
                be.zoUpdate(.direction, x, state1: m, state2: d, seed: 43, tensorId: 6, stream: 0, scalars: s)
                (s.a1, s.a2) = (1e-3, -2e-3)
                be.zoUpdate(.direction, x, state1: m, state2: d, seed: 44, tensorId: 6, stream: 0, scalars: s)
                be.addScaled(x, d, alpha: -0.3)
                for (t, signs) in [false, true].enumerated() {
                    let sel = JaguarSelection(shape: [rows, cols], fraction: 0.07, signs: signs)
                    var j = JaguarScalars()
                    (j.restore, j.g, j.beta, j.momentum, j.lr) = (1e-3, 0.7, 0.2, 0.9, 1e-3)
                    for kind in [JaguarKind.sign, .sgd, .memory] {
                        be.jaguarProbe(x, sel, seed: UInt64(50 + t), tensorId: 6, scale: 1e-3)
                        be.jaguarProbe(x, sel, seed: UInt64(50 + t), tensorId: 6, scale: -2e-3)
                        be.jaguarUpdate(kind, x, state: m, sel, seed: UInt64(50 + t), tensorId: 6, scalars: j)
                        var r = j
                        (r.a1, r.a2) = (1e-3, -2e-3)
                        be.jaguarUpdate(kind, x, state: m, sel, seed: UInt64(60 + t), tensorId: 6, scalars: r)
                    }
                }
                var h = [UInt8](repeating: 0, count: x.bytes + m.bytes)
                h.withUnsafeMutableBytes { buf in
                    be.copy(x, toHost: UnsafeMutableRawBufferPointer(rebasing: buf[0..<x.bytes]))
                    be.copy(m, toHost: UnsafeMutableRawBufferPointer(rebasing: buf[x.bytes...]))
                }
                bits.append(h)
            }
            XCTAssertTrue(bits[0] == bits[1], "\(dtype): matrix-optimizer passes differ from the CPU's")
        }
        for (r, c) in [(64, 256), (200, 72)] {
            for p in NewtonSchulz.allCases {
                var outs: [[Float]] = []
                for (be, bf16) in [(cpu, false), (gpu, false), (gpu, true), (gpu, true)] as [(KernelBackend, Bool)] {
                    let x = try be.allocate([r, c], tag: .scratch)
                    be.fillNormal(x, seed: 70, tensorId: 7, stream: 0, scale: 1)
                    try be.newtonSchulz(x, p, steps: 10, bf16: bf16)
                    outs.append(be.toHost(x))
                }
                func relFro(_ a: [Float], _ b: [Float]) -> Double {
                    let num = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
                    return (num / b.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
                }
                XCTAssertLessThan(zip(outs[0], outs[1]).map { abs($0 - $1) }.max()!, 1e-4, "\(p) \(r)×\(c) f32")
                // bf16 operands: NS differs from f32 NS by 2–3e-2 (Frobenius, measured on the CPU
                // with operands rounded as the kernel rounds them; bench/device/check.c).
                XCTAssertLessThan(relFro(outs[2], outs[0]), 5e-2, "\(p) \(r)×\(c) bf16")
                XCTAssertEqual(outs[2], outs[3], "\(p) \(r)×\(c): NS is not deterministic on the device")
            }
        }
    }
}
