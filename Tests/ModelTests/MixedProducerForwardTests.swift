import Foundation
import XCTest
import ZOTuneBackend
@testable import ZOTuneModels

/// Mixed precision rounds each GEMM's activation in the kernel that makes it (rmsnorm_half,
/// layernorm_half, attention_half, swiglu_half, activation_half) instead of by a convert or inside
/// gemm_mixed. That moves where the rounding happens, not what is rounded (round to nearest even of
/// the same f32 values, HalfProducerTests), so a forward gives the same logits bits both ways. The
/// fixtures cover each producer: Llama (RMSNorm, grouped q/k/v, SwiGLU), GPT-2 (LayerNorm, fused
/// Conv1D q/k/v, GELU), OPT (LayerNorm, separate q/k/v, ReLU), Gemma (1 + w RMSNorm, GeGLU),
/// GPT-NeoX (parallel residual, interleaved fused q/k/v) and OLMo 2 (no input norm, q/k norms);
/// a padded batch, and a prefill and a decode step over a KV cache.
final class MixedProducerForwardTests: XCTestCase {
    let backend = KernelBackend.cpu()

    func logitsBothWays(_ model: String, dtype: DType) throws -> (before: [UInt32], after: [UInt32]) {
        let dir = ForwardParityTests.fixtures.appendingPathComponent(model)
        let ckpt = try HFCheckpoint(path: dir.path)
        let lm = try CausalLM(config: ckpt.config, reader: ckpt, backend: backend, dtype: dtype, precision: .mixed)
        let v = lm.config.vocabSize
        // Two rows, the second left-padded (a masked key in every query's range).
        let ids: [Int32] = [3, 9, 4, 1, 7, 2, 0, 0, 5, 8, 6, 3].map { $0 % Int32(v) }
        let batch = TokenBatch(ids: ids, mask: [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1], batch: 2, length: 6)
        // The padded batch's logits, then a prefill and one decode step over a KV cache (attention
        // reading the cache in place).
        func logits() throws -> [UInt32] {
            var out = backend.toHost(try lm.allLogits(batch))
            let prompts: [[Int32]] = [[3, 9, 4, 1], [5, 8]].map { $0.map { $0 % Int32(v) } }
            let cache = try lm.makeCache(batch: 2, capacity: 6)
            out += backend.toHost(try lm.lastLogits(TokenBatch.leftPadded(prompts, padId: 0), cache: cache))
            out += backend.toHost(try lm.lastLogits(TokenBatch(ids: [2, 6], mask: [1, 1], batch: 2, length: 1), cache: cache))
            return out.map(\.bitPattern)
        }
        lm.roundInProducers = false
        let before = try logits()
        lm.roundInProducers = true
        let after = try logits()
        try backend.checkErrors()
        XCTAssertTrue(before.contains { $0 != 0 }, "\(model): a zero output would pass trivially")
        return (before, after)
    }

    func check(_ model: String, dtype: DType) throws {
        let (before, after) = try logitsBothWays(model, dtype: dtype)
        let differ = zip(before, after).filter { $0 != $1 }.count
        XCTAssertEqual(differ, 0, "\(model) \(dtype): \(differ) of \(before.count) logits differ with the roundings in their producers")
    }

    func testLlama() throws { try check("llama", dtype: .bf16) }
    func testGPT2() throws { try check("gpt2", dtype: .f16) }
    func testOPT() throws { try check("opt", dtype: .bf16) }
    func testGemma() throws { try check("gemma", dtype: .bf16) }
    func testGPTNeoX() throws { try check("gptneox", dtype: .bf16) }
    func testOLMo2() throws { try check("olmo2", dtype: .bf16) }
}
