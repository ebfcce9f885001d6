import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels

/// rmsNormHalf / swigluHalf (ABI 11), layerNormHalf / activationHalf / attentionHalf (ABI 12): the activation rounded once by the kernel that makes it is the
/// round-after pair (the op, then convert) bit for bit, and its f16 bits are Swift's own IEEE
/// round-to-nearest-even conversion of the op's f32 values (an outside reference for the rounding).
/// CUDA graphs are not a CPU feature: the CPU table says so through all four entries.
final class HalfProducerTests: XCTestCase {
    let backend = KernelBackend.cpu()

    private func random(_ n: Int, scale: Float, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return scale * (Float(Int64(bitPattern: s) >> 11) / Float(1 << 52))
        }
    }

    private func bits(_ t: Tensor) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: t.count)
        out.withUnsafeMutableBytes { backend.copy(t, toHost: $0) }
        return out
    }

    private func check(_ v: Tensor, half: Tensor, pair: Tensor, _ what: String) {
        backend.convert(into: pair, from: v)
        XCTAssertEqual(bits(half), bits(pair), "\(what): rounded in the producer != op + convert")
        if half.dtype == .f16 {
            let ref = backend.toHost(v).map { Float16($0).bitPattern }  // IEEE RNE, overflow to ±inf
            XCTAssertEqual(bits(half), ref, "\(what): f16 bits != Swift's Float16 conversion")
        }
    }

    // 130 × 576 and 1 × 70001 cross the CPU kernel's 2^16-element panels; dim 7 is a ragged row.
    func testRMSNormHalfIsRMSNormThenConvert() throws {
        for dtype in [DType.bf16, .f16] {
            for (rows, dim) in [(130, 576), (1, 70_001), (3, 7)] {
                let n = rows * dim
                let x = try backend.tensor(random(n, scale: 3, seed: UInt64(n)), shape: [rows, dim], tag: .activations)
                let g = try backend.tensor(random(dim, scale: 1, seed: 9), shape: [dim], tag: .activations)
                let ref = try backend.allocate([rows, dim], tag: .activations)
                let out = try backend.allocate([rows, dim], tag: .activations)
                let half = try backend.allocate([rows, dim], dtype: dtype, tag: .activations)
                let pair = try backend.allocate([rows, dim], dtype: dtype, tag: .activations)
                backend.rmsNorm(ref, x, gamma: g, eps: 1e-5)
                backend.rmsNormHalf(out, half: half, x, gamma: g, eps: 1e-5)
                XCTAssertEqual(backend.toHost(out).map(\.bitPattern), backend.toHost(ref).map(\.bitPattern), "f32 output \(rows)x\(dim)")
                check(ref, half: half, pair: pair, "rmsnorm \(dtype) \(rows)x\(dim)")
                let half2 = try backend.allocate([rows, dim], dtype: dtype, tag: .activations)
                backend.rmsNormHalf(nil, half: half2, x, gamma: g, eps: 1e-5)
                XCTAssertEqual(bits(half2), bits(half), "rounded copy only, \(dtype) \(rows)x\(dim)")
            }
        }
        try backend.checkErrors()
    }

    func testSwiGLUHalfIsSwiGLUThenConvert() throws {
        for dtype in [DType.bf16, .f16] {
            for n in [1, 4099, 70_001] {
                let gate = try backend.tensor(random(n, scale: 6, seed: 1), shape: [n], tag: .activations)
                let up = try backend.tensor(random(n, scale: 2, seed: 2), shape: [n], tag: .activations)
                let ref = try backend.allocate([n], tag: .activations)
                let out = try backend.allocate([n], tag: .activations)
                let half = try backend.allocate([n], dtype: dtype, tag: .activations)
                let pair = try backend.allocate([n], dtype: dtype, tag: .activations)
                backend.swiglu(ref, gate: gate, up: up)
                backend.swigluHalf(out, half: half, gate: gate, up: up)
                XCTAssertEqual(backend.toHost(out).map(\.bitPattern), backend.toHost(ref).map(\.bitPattern), "f32 output n \(n)")
                check(ref, half: half, pair: pair, "swiglu \(dtype) n \(n)")
                let half2 = try backend.allocate([n], dtype: dtype, tag: .activations)
                backend.swigluHalf(nil, half: half2, gate: gate, up: up)
                XCTAssertEqual(bits(half2), bits(half), "rounded copy only, \(dtype) n \(n)")
            }
        }
        try backend.checkErrors()
    }

    // ABI 12: LayerNorm (GPT-2's width at a full panel and across panels, with and without γ/β).
    func testLayerNormHalfIsLayerNormThenConvert() throws {
        for dtype in [DType.bf16, .f16] {
            for (rows, dim, affine) in [(130, 768, true), (1, 70_001, true), (3, 7, false)] {
                let n = rows * dim
                let x = try backend.tensor(random(n, scale: 3, seed: UInt64(n) + 5), shape: [rows, dim], tag: .activations)
                let g = affine ? try backend.tensor(random(dim, scale: 1, seed: 19), shape: [dim], tag: .activations) : nil
                let b = affine ? try backend.tensor(random(dim, scale: 0.3, seed: 20), shape: [dim], tag: .activations) : nil
                let ref = try backend.allocate([rows, dim], tag: .activations)
                let out = try backend.allocate([rows, dim], tag: .activations)
                let half = try backend.allocate([rows, dim], dtype: dtype, tag: .activations)
                let pair = try backend.allocate([rows, dim], dtype: dtype, tag: .activations)
                backend.layerNorm(ref, x, gamma: g, beta: b, eps: 1e-5)
                backend.layerNormHalf(out, half: half, x, gamma: g, beta: b, eps: 1e-5)
                XCTAssertEqual(backend.toHost(out).map(\.bitPattern), backend.toHost(ref).map(\.bitPattern), "f32 output \(rows)x\(dim)")
                check(ref, half: half, pair: pair, "layernorm \(dtype) \(rows)x\(dim)")
                let half2 = try backend.allocate([rows, dim], dtype: dtype, tag: .activations)
                backend.layerNormHalf(nil, half: half2, x, gamma: g, beta: b, eps: 1e-5)
                XCTAssertEqual(bits(half2), bits(half), "rounded copy only, \(dtype) \(rows)x\(dim)")
            }
        }
        try backend.checkErrors()
    }

    // Each activation alone (GPT-2 / NeoX GELU, OPT ReLU: out = x in place) and gated (Gemma's GeGLU:
    // out = up, the tensor `times` reads), against activation (then mul) then convert.
    func testActivationHalfIsActivationThenConvert() throws {
        for dtype in [DType.bf16, .f16] {
            for kind in Activation.allCases {
                for n in [1, 4099, 70_001] {
                    for gated in [false, true] {
                        let what = "\(kind)\(gated ? " ⊙ up" : "") \(dtype) n \(n)"
                        let xs = random(n, scale: 6, seed: 3), us = random(n, scale: 2, seed: 4)
                        let x = try backend.tensor(xs, shape: [n], tag: .activations)
                        let up = try backend.tensor(us, shape: [n], tag: .activations)
                        let ref = try backend.allocate([n], tag: .activations)
                        backend.activation(kind, ref, x)
                        if gated { backend.mul(ref, ref, up) }
                        let half = try backend.allocate([n], dtype: dtype, tag: .activations)
                        let pair = try backend.allocate([n], dtype: dtype, tag: .activations)
                        let out = try backend.tensor(gated ? us : xs, shape: [n], tag: .activations)  // in place
                        backend.activationHalf(kind, out, half: half, gated ? x : out, times: gated ? out : nil)
                        XCTAssertEqual(backend.toHost(out).map(\.bitPattern), backend.toHost(ref).map(\.bitPattern), "f32 output, \(what)")
                        check(ref, half: half, pair: pair, what)
                        let half2 = try backend.allocate([n], dtype: dtype, tag: .activations)
                        backend.activationHalf(kind, nil, half: half2, x, times: gated ? up : nil)
                        XCTAssertEqual(bits(half2), bits(half), "rounded copy only, \(what)")
                    }
                }
            }
        }
        try backend.checkErrors()
    }

    // attention (o_proj's input): GQA over a cache with a masked key, a window and a softcap.
    func testAttentionHalfIsAttentionThenConvert() throws {
        let (b, t, cap, hq, hkv, d) = (2, 5, 9, 6, 2, 16)
        let q = try backend.tensor(random(b * t * hq * d, scale: 2, seed: 31), shape: [b, t, hq, d], tag: .activations)
        let k = try backend.tensor(random(b * cap * hkv * d, scale: 2, seed: 32), shape: [b, cap, hkv, d], tag: .activations)
        let v = try backend.tensor(random(b * cap * hkv * d, scale: 1, seed: 33), shape: [b, cap, hkv, d], tag: .activations)
        let mask = try backend.tensor((0..<(b * cap)).map { UInt8($0 % 4 == 1 ? 0 : 1) }, shape: [b, cap], tag: .activations)
        for dtype in [DType.bf16, .f16] {
            for (window, softcap) in [(0, Float(0)), (3, Float(2))] {
                let what = "attention \(dtype) window \(window) softcap \(softcap)"
                let ref = try backend.allocate(q.shape, tag: .activations)
                let out = try backend.allocate(q.shape, tag: .activations)
                let half = try backend.allocate(q.shape, dtype: dtype, tag: .activations)
                let pair = try backend.allocate(q.shape, dtype: dtype, tag: .activations)
                backend.attention(ref, q: q, k: k, v: v, keyLength: 8, keyMask: mask, scale: 0.25, window: window, softcap: softcap)
                backend.attentionHalf(out, half: half, q: q, k: k, v: v, keyLength: 8, keyMask: mask, scale: 0.25, window: window,
                                      softcap: softcap)
                XCTAssertEqual(backend.toHost(out).map(\.bitPattern), backend.toHost(ref).map(\.bitPattern), "f32 output, \(what)")
                check(ref, half: half, pair: pair, what)
            }
        }
        try backend.checkErrors()
    }

    // A gated MLP under mixed precision, as CausalLM ran it (rmsNorm, convert, gate/up on the rounded
    // copy, swiglu, down through matmulMixed) and as it runs it now (rmsNormHalf, swigluHalf, every
    // GEMM on a copy rounded by its producer): the same output bits (SmolLM2's widths, 5 tokens).
    func testMixedMLPUnchangedByRoundingInTheProducer() throws {
        let (n, h, f) = (5, 576, 1536)
        let x = try backend.tensor(random(n * h, scale: 2, seed: 11), shape: [n, h], tag: .activations)
        let g = try backend.tensor(random(h, scale: 1, seed: 12), shape: [h], tag: .activations)
        func weight(_ rows: Int, _ cols: Int, _ seed: UInt64) throws -> Tensor {
            let w32 = try backend.tensor(random(rows * cols, scale: 0.05, seed: seed), shape: [rows, cols], tag: .weights)
            let w = try backend.allocate([rows, cols], dtype: .bf16, tag: .weights)
            backend.convert(into: w, from: w32)
            return w
        }
        let (wg, wu, wd) = (try weight(f, h, 13), try weight(f, h, 14), try weight(h, f, 15))
        let wsBytes = max(backend.mixedWorkspaceBytes(m: n, n: f, k: h), backend.mixedWorkspaceBytes(m: n, n: h, k: f))
        let ws = try backend.allocate([wsBytes], dtype: .u8, tag: .scratch)
        func mlp(producers: Bool) throws -> [UInt32] {
            let normed = try backend.allocate([n, h], tag: .activations)
            let x16 = try backend.allocate([n, h], dtype: .bf16, tag: .activations)
            let (gate, up) = (try backend.allocate([n, f], tag: .activations), try backend.allocate([n, f], tag: .activations))
            let out = try backend.allocate([n, h], tag: .activations)
            if producers { backend.rmsNormHalf(normed, half: x16, x, gamma: g, eps: 1e-5) } else {
                backend.rmsNorm(normed, x, gamma: g, eps: 1e-5)
                backend.convert(into: x16, from: normed)
            }
            backend.matmulHalf(gate, x16, weight: wg, transposeB: true, workspace: ws)
            backend.matmulHalf(up, x16, weight: wu, transposeB: true, workspace: ws)
            if producers {
                let h16 = try backend.allocate([n, f], dtype: .bf16, tag: .activations)
                backend.swigluHalf(up, half: h16, gate: gate, up: up)
                backend.matmulHalf(out, h16, weight: wd, transposeB: true, workspace: ws)
            } else {
                backend.swiglu(up, gate: gate, up: up)
                backend.matmulMixed(out, up, weight: wd, transposeB: true, workspace: ws)
            }
            return backend.toHost(out).map(\.bitPattern)
        }
        let before = try mlp(producers: false), after = try mlp(producers: true)
        XCTAssertEqual(before, after)
        XCTAssertTrue(before.contains { $0 != 0 }, "a zero output would pass trivially")
        try backend.checkErrors()
    }

    // The CPU table's graph entries: a nonzero code, no graph, a line naming the entry; the backend
    // then records nothing and the caller runs eagerly.
    func testCPUHasNoGraphs() throws {
        let api = zt_cpu_api()!.pointee
        var g: UInt64 = 99
        XCTAssertNotEqual(api.graph_begin(), 0)
        XCTAssertTrue(String(cString: api.last_error()!).contains("graph_begin: CUDA graphs are not supported on the CPU"))
        XCTAssertNotEqual(api.graph_end(&g), 0)
        XCTAssertEqual(g, 0)
        XCTAssertNotEqual(api.graph_launch(1), 0)
        XCTAssertEqual(api.graph_destroy(0), 0, "destroying no graph is a no-op")
        XCTAssertNotEqual(api.rmsnorm_half(nil, nil, DType.f32.code, nil, nil, 1, 1, 1e-5), 0, "f32 is not a half dtype")
        XCTAssertNotEqual(api.layernorm_half(nil, nil, DType.f32.code, nil, nil, nil, 1, 1, 1e-5), 0, "f32 is not a half dtype")
        XCTAssertNotEqual(api.activation_half(0, nil, nil, DType.f32.code, nil, nil, 1), 0, "f32 is not a half dtype")
        XCTAssertNotEqual(api.activation_half(9, nil, nil, DType.bf16.code, nil, nil, 1), 0, "no activation 9")
        var ran = false
        XCTAssertNil(try backend.recordGraph { ran = true })
        XCTAssertFalse(ran, "nothing is recorded or run on the CPU")
    }
}
