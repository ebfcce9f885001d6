import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels

/// OPT, GPT-2 and Llama forwards against transformers' logits for tiny random checkpoints
/// (Fixtures/make_model_fixtures.py): a left-padded batch, the same sequences alone, target
/// log-probs, KV-cache decoding and low-precision weight storage.
final class ForwardParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/models")
    let backend = KernelBackend.cpu()

    struct Reference {
        let ids: [[Int32]]
        let mask: [[Int]]
        let logits: [[[Float]?]]          // (B, T, V), nil at pads
        let nextLogProbs: [[Float?]]      // (B, T-1)
        let unpadded: [(ids: [Int32], logits: [[Float]])]
        let padId: Int32
    }

    func reference(_ model: String) throws -> Reference {
        let url = Self.fixtures.appendingPathComponent(model).appendingPathComponent("reference.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let batch = json["batch"] as! [String: Any]
        func floats(_ a: Any) -> [Float] { (a as! [NSNumber]).map { $0.floatValue } }
        let ids = (batch["input_ids"] as! [[NSNumber]]).map { $0.map { Int32(truncating: $0) } }
        let logits = (batch["logits"] as! [[Any]]).map { $0.map { $0 is NSNull ? nil : floats($0) } }
        let lp = (batch["next_token_logprobs"] as! [[Any]]).map { $0.map { ($0 as? NSNumber)?.floatValue } }
        let unpadded = (json["unpadded"] as! [[String: Any]]).map {
            (ids: ($0["input_ids"] as! [NSNumber]).map { Int32(truncating: $0) },
             logits: ($0["logits"] as! [Any]).map(floats))
        }
        return Reference(ids: ids, mask: (batch["attention_mask"] as! [[NSNumber]]).map { $0.map(\.intValue) },
                         logits: logits, nextLogProbs: lp, unpadded: unpadded,
                         padId: Int32(truncating: json["pad_token_id"] as! NSNumber))
    }

    /// `gguf`: the same checkpoint as llama.cpp's converter lays it out (`model.gguf`), config from its metadata.
    func load(_ model: String, dtype: DType = .f32, precision: GemmPrecision = .f32, gguf: Bool = false) throws -> CausalLM {
        let dir = Self.fixtures.appendingPathComponent(model)
        if gguf {
            let g = try GGUFFile(path: dir.appendingPathComponent("model.gguf").path)
            return try CausalLM(config: try g.modelConfig(), reader: g, backend: backend, dtype: dtype, precision: precision)
        }
        let ckpt = try HFCheckpoint(path: dir.path)
        return try CausalLM(config: ckpt.config, reader: ckpt, backend: backend, dtype: dtype, precision: precision)
    }

    func maxDiff(_ a: ArraySlice<Float>, _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    /// Padded batch, unpadded sequences and target log-probs, all within `tol` of transformers.
    func checkParity(_ model: String, referenceOf: String? = nil, dtype: DType = .f32, precision: GemmPrecision = .f32,
                     gguf: Bool = false, tol: Float) throws {
        let ref = try reference(referenceOf ?? model)
        let lm = try load(model, dtype: dtype, precision: precision, gguf: gguf)
        let v = lm.config.vocabSize
        let mask = ref.mask.flatMap { $0.map(UInt8.init) }
        let batch = TokenBatch(ids: ref.ids.flatMap { $0 }, mask: mask, batch: ref.ids.count, length: ref.ids[0].count)
        let logits = backend.toHost(try lm.allLogits(batch))
        var worst: Float = 0
        for b in 0..<batch.batch { for t in 0..<batch.length {
            guard let want = ref.logits[b][t] else { continue }
            let row = (b * batch.length + t) * v
            worst = max(worst, maxDiff(logits[row..<(row + v)], want))
        } }
        print("ForwardParityTests \(model)\(gguf ? " gguf" : "") \(dtype) \(precision): max |Δlogit| \(worst) on max |logit| \(ref.logits.joined().compactMap { $0?.map(abs).max() }.max() ?? 0)")
        XCTAssertLessThanOrEqual(worst, tol, "\(model) padded batch: max |Δlogit| \(worst)")

        // Target log-probs of the next token (the ZO scoring path), chunked over rows.
        var targets = [Int32](repeating: -1, count: batch.tokenCount)
        for b in 0..<batch.batch { for t in 0..<(batch.length - 1) { targets[b * batch.length + t] = ref.ids[b][t + 1] } }
        let lps = try lm.tokenLogProbs(batch, targets: targets, chunk: 5)
        for b in 0..<batch.batch { for t in 0..<(batch.length - 1) {
            guard let want = ref.nextLogProbs[b][t] else { continue }
            XCTAssertEqual(lps[b * batch.length + t], want, accuracy: 2 * tol, "\(model) log-prob b\(b) t\(t)")
        } }

        for seq in ref.unpadded {
            let one = TokenBatch.leftPadded([seq.ids], padId: ref.padId)
            let l = backend.toHost(try lm.allLogits(one))
            var w: Float = 0
            for t in 0..<seq.ids.count { w = max(w, maxDiff(l[(t * v)..<((t + 1) * v)], seq.logits[t])) }
            XCTAssertLessThanOrEqual(w, tol, "\(model) unpadded length \(seq.ids.count): max |Δlogit| \(w)")
        }
    }

    // f32: the same math as PyTorch up to summation order. Tiny models (2 layers, hidden ≤ 64,
    // K ≤ 128 per dot product), |logit| ≤ 5 where one ulp is 4.8e-7: each GEMM adds ~sqrt(K)·2^-24
    // relative (K·2^-24 worst, 7.6e-6), a few GEMMs per layer. Measured 1.8e-6–2.9e-6 (4–6 ulps)
    // with OpenBLAS Haswell (FMA) and Sandybridge (no FMA) kernels alike (docs/testing.md); 1e-4
    // (~200 ulps, the K·ulp worst case of every GEMM on the path summed) is ≥ 35× that, while a
    // wrong norm ε, RoPE variant, mask or bias is ≥ 1e-3.
    func testOPT() throws { try checkParity("opt", tol: 1e-4) }
    func testOPTPostLayerNormWithProjections() throws { try checkParity("opt_postln", tol: 1e-4) }
    func testGPT2() throws { try checkParity("gpt2", tol: 1e-4) }
    func testLlamaGQA() throws { try checkParity("llama", tol: 1e-4) }
    func testLlama3RopeScalingTiedHeadDim() throws { try checkParity("llama3", tol: 1e-4) }
    func testShardedCheckpointLoadsTheSameWeights() throws { try checkParity("opt_sharded", referenceOf: "opt", tol: 1e-4) }

    // bf16 weight storage with f32 math: each weight carries ≤ 2^-9 relative rounding, which on
    // these N(0, 0.2²) weights moves logits by a few 1e-2; 0.1 bounds it with margin. The
    // rounding is deterministic (the same bits on any CPU); the kernel set adds only the f32
    // figure above (≤ 3e-6).
    func testLlamaBF16Storage() throws { try checkParity("llama", dtype: .bf16, tol: 0.1) }
    func testGPT2F16Storage() throws { try checkParity("gpt2", dtype: .f16, tol: 0.02) }

    // Mixed precision (the CUDA contract, emulated exactly on the CPU): activations rounded to the
    // weights' bf16/f16 at every linear on top of the storage rounding; the same bounds hold
    // (measured max |Δlogit|: llama bf16 0.064 vs 0.044 for storage alone; gpt2 f16 0.008 vs 0.006).
    func testLlamaMixedPrecision() throws { try checkParity("llama", dtype: .bf16, precision: .mixed, tol: 0.1) }
    func testGPT2MixedPrecisionF16() throws { try checkParity("gpt2", dtype: .f16, precision: .mixed, tol: 0.02) }

    // Single-token candidates scored on the device (log-softmax and gather, B × C floats back)
    // equal the log-softmax of the last logits computed naively in Double on the host.
    func testLastTokenLogProbsEqualHostLogSoftmax() throws {
        let lm = try load("llama")
        let batch = TokenBatch.leftPadded([[1, 5, 9, 3], [1, 7], [1, 2, 3]], padId: 0)
        let candidates: [[Int32]] = [[4, 8], [11, 3, 60], [0]]
        let got = try lm.lastTokenLogProbs(batch, candidates: candidates)
        let logits = backend.toHost(try lm.lastLogits(batch)), v = lm.config.vocabSize
        for (b, row) in candidates.enumerated() {
            let r = logits[(b * v)..<((b + 1) * v)].map(Double.init)
            let lse = log(r.map { exp($0) }.reduce(0, +))
            XCTAssertEqual(got[b].count, row.count)
            for (c, t) in row.enumerated() { XCTAssertEqual(Double(got[b][c]), r[Int(t)] - lse, accuracy: 1e-5, "row \(b) candidate \(t)") }
        }
    }

    // Decoding with the KV cache one token at a time reproduces the full forward's logits.
    func testKVCacheMatchesFullForward() throws {
        // Windows of 3 keys (mistral_swa, qwen2_swa) are crossed by these 6-position sequences.
        for model in ["llama", "gpt2", "opt", "qwen2", "qwen3", "mistral_swa", "qwen2_swa", "phi3", "gemma", "gemma2", "gemma3", "olmo2", "gptneox"] {
            let ref = try reference(model)
            let lm = try load(model)
            let v = lm.config.vocabSize
            let prompts = [Array(ref.ids[0][0..<3]), Array(ref.ids[1].suffix(2))]
            let rest: [[Int32]] = [Array(ref.ids[0][3..<6]), [5, 9, 11]]
            let cache = try lm.makeCache(batch: 2, capacity: 8)
            var last = backend.toHost(try lm.lastLogits(.leftPadded(prompts, padId: ref.padId), cache: cache))
            for step in 0...rest[0].count {
                for b in 0..<2 {
                    let seq = prompts[b] + rest[b][0..<step]
                    let full = backend.toHost(try lm.lastLogits(.leftPadded([seq], padId: ref.padId)))
                    XCTAssertLessThanOrEqual(maxDiff(last[(b * v)..<((b + 1) * v)], full), 1e-4, "\(model) row \(b) step \(step)")
                }
                if step == rest[0].count { break }
                let next = TokenBatch(ids: [rest[0][step], rest[1][step]], mask: [1, 1], batch: 2, length: 1)
                last = backend.toHost(try lm.lastLogits(next, cache: cache))
            }
        }
    }
}

/// A checkpoint whose tensors do not fit its config is refused, naming the file and the tensor.
final class CheckpointShapeTests: XCTestCase {
    func testMisshapedTensorIsRejectedWithItsName() throws {
        let ckpt = try HFCheckpoint(path: ForwardParityTests.fixtures.appendingPathComponent("llama").path)
        var config = ckpt.config
        config.intermediateSize += 1
        XCTAssertThrowsError(try CausalLM(config: config, reader: ckpt, backend: KernelBackend.cpu())) { error in
            let e = error as? ModelError
            XCTAssertEqual(e?.field, "model.layers.0.mlp.gate_proj.weight", "\(error)")
            XCTAssertTrue("\(error)".contains("model.safetensors"), "\(error)")
        }
        var wrongVocab = ckpt.config
        wrongVocab.vocabSize += 7
        XCTAssertThrowsError(try CausalLM(config: wrongVocab, reader: ckpt, backend: KernelBackend.cpu())) {
            XCTAssertEqual(($0 as? ModelError)?.field, "model.embed_tokens.weight")
        }
    }
}
