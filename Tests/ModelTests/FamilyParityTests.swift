import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels

/// The families added on the family design (Architectures/: Qwen2, Qwen3, Mistral with its
/// sliding window, Phi-3 with fused projections, partial rotary and LongRoPE) against
/// transformers on tiny random checkpoints whose biases and norm gains are non-zero
/// (Fixtures/make_model_fixtures.py), so a missing or extra bias or norm cannot pass, and whose
/// 7-token prompts are longer than any window (a window ignored moves logits by 0.8–5.7).
extension ForwardParityTests {
    // f32, the same bound as Llama's and for the same reason: the same math as PyTorch up to the
    // summation order of 32- to 128-long dot products, ~1e-6 relative on logits of magnitude ~5
    // after two layers (measured ≤ 4.2e-6 on every fixture below); 1e-4 leaves room for any BLAS
    // kernel choice and is 4 orders below what a missing bias, norm or window changes.
    func testQwen2QKVBiasUntied() throws { try checkParity("qwen2", tol: 1e-4) }
    func testQwen2TiedOneKVHead() throws { try checkParity("qwen2_tied", tol: 1e-4) }
    func testQwen2SlidingWindowOnLaterLayers() throws { try checkParity("qwen2_swa", tol: 1e-4) }
    func testQwen3QKNormHeadDim16() throws { try checkParity("qwen3", tol: 1e-4) }
    func testQwen3TiedAttentionBias() throws { try checkParity("qwen3_tied", tol: 1e-4) }
    func testMistralSlidingWindow() throws { try checkParity("mistral_swa", tol: 1e-4) }
    func testPhi3FusedProjections() throws { try checkParity("phi3", tol: 1e-4) }
    /// The padded batch reaches position 6 > original context 4 (long factors); the unpadded
    /// sequences of 4 and 1 tokens stay within it (short factors), as transformers picks them.
    func testPhi3LongRopePartialRotaryWindow() throws { try checkParity("phi3_longrope", tol: 1e-4) }

    /// The same checkpoints written as llama.cpp's converter writes them (Fixtures/make_family_gguf.py:
    /// its names, Llama's q/k row permutation, Phi-3's fused attn_qkv and ffn_up, LongRoPE's factor
    /// tensors, F32 data), configured from the GGUF metadata alone: the same logits, same bound.
    /// The converter drops Mistral's and Qwen2's windows (no such key), so those two files are not
    /// expected to match and are left out; Llama 3's rope_freqs is refused (testLlama3GGUFRefused).
    func testFamiliesFromGGUF() throws {
        for model in ["llama", "qwen2", "qwen2_tied", "qwen3", "qwen3_tied", "phi3", "phi3_longrope"] {
            try checkParity(model, gguf: true, tol: 1e-4)
        }
    }

    func testLlama3GGUFRefused() throws {
        XCTAssertThrowsError(try load("llama3", gguf: true)) { XCTAssertEqual(($0 as? ModelError)?.field, "rope_freqs.weight", "\($0)") }
    }

    // Part 2 (Gemma, Gemma 3, OLMo 2, GPT-NeoX): the same bound and derivation; a missing
    // 1 + w gain, √hidden scale, output norm, local RoPE base or parallel residual moves these
    // logits by 0.14–6 (make_model_fixtures.py's sensitivity table).
    func testGemmaUnitOffsetNormsGeGLUScaledEmbeddings() throws { try checkParity("gemma", tol: 1e-4) }
    func testGemma3QKNormPostNormsLocalRope() throws { try checkParity("gemma3", tol: 1e-4) }
    /// Soft-caps of 2 (scores) and 3 (logits) bite on these weights (0.41 and 2.0 off without them).
    func testGemma2SoftcapsAlternatingWindows() throws { try checkParity("gemma2", tol: 1e-4) }
    func testOLMo2PostNormsFullQKNorm() throws { try checkParity("olmo2", tol: 1e-4) }
    func testGPTNeoXParallelResidualPartialRotary() throws { try checkParity("gptneox", tol: 1e-4) }
    func testGPTNeoXSequentialResidual() throws { try checkParity("gptneox_seq", tol: 1e-4) }

    /// Gemma's numeric trap in bf16: its gains are 1 + w with |w| ~ 0.1, so a gain rounded to bf16
    /// (8 bits) would lose most of w. Norm gains stay f32 whatever --dtype says and 1 + w is formed
    /// in f32 at each use, as transformers' `1.0 + weight.float()`; the √hidden scale is cast to
    /// bf16 as transformers casts it (GemmaEmbeddingScaleTests). With bf16 matrices the logits stay within the bf16-storage bound of Llama's test
    /// (0.1: each weight rounded by ≤ 2^-9 relative, measured 0.044 there).
    func testGemmaBF16StorageKeepsF32Gains() throws {
        let lm = try load("gemma", dtype: .bf16)
        XCTAssertEqual(lm.weights["model.layers.0.input_layernorm.weight"].dtype, .f32)
        XCTAssertEqual(lm.weights["model.layers.0.self_attn.q_proj.weight"].dtype, .bf16)
        try checkParity("gemma", dtype: .bf16, tol: 0.1)
    }

    /// GGUF as llama.cpp's converter writes these (Gemma's gains as 1 + w, GPT-NeoX's q/k/v
    /// regrouped). Gemma 3's GGUF carries neither query_pre_attn_scalar nor the layer pattern
    /// (llama.cpp assumes head_dim and every sixth layer global), so the tiny gemma3 file is not
    /// expected to match its config.json reference and is left out.
    func testPart2FamiliesFromGGUF() throws {
        for model in ["gemma", "olmo2", "gptneox", "gptneox_seq"] { try checkParity(model, gguf: true, tol: 1e-4) }
        // Gemma 2's GGUF carries both soft-caps and the window but not query_pre_attn_scalar (24
        // here, not head_dim): llama.cpp's scale would differ, so only its config is checked.
        let g = try load("gemma2", gguf: true).config
        XCTAssertEqual(g.attentionSoftcap, 2)
        XCTAssertEqual(g.finalLogitSoftcap, 3)
        XCTAssertEqual((0..<4).map { g.window(layer: $0) }, [3, 0, 3, 0])
    }

    /// The checkpoint's tensors are the family's: q/k/v biases, no o or MLP bias, a tied head shared.
    func testQwen2TensorsAndTying() throws {
        let untied = try load("qwen2"), tied = try load("qwen2_tied")
        for lm in [untied, tied] {
            XCTAssertEqual(lm.config.architecture, .qwen2)
            let layer = lm.plan.layers[1]
            XCTAssertEqual(layer.linears.map { $0.bias != nil }, [true, true, true, false, false, false, false])
        }
        XCTAssertFalse(untied.weights["lm_head.weight"].buffer === untied.weights["model.embed_tokens.weight"].buffer)
        XCTAssertTrue(tied.weights["lm_head.weight"].buffer === tied.weights["model.embed_tokens.weight"].buffer)
    }

    /// Each config field lands where transformers reads it: windows per layer (Qwen2's
    /// layer_types, Mistral's every layer), head_dim, q/k norms, fused roles, partial rotary and
    /// LongRoPE's attention factor (the value transformers computed, in reference.json).
    func testFamilyConfigFields() throws {
        let qwen2 = try load("qwen2_swa"), mistral = try load("mistral_swa"), qwen3 = try load("qwen3")
        XCTAssertEqual(qwen2.plan.layers.map(\.window), [0, 3])
        XCTAssertEqual(mistral.config.architecture, .mistral)
        XCTAssertEqual(mistral.plan.layers.map(\.window), [3, 3])
        XCTAssertEqual(qwen3.config.headDim, 16)
        XCTAssertEqual(qwen3.plan.layers[0].qNorm?.weight, "model.layers.0.self_attn.q_norm.weight")
        XCTAssertEqual(qwen3.weights["model.layers.0.self_attn.q_proj.weight"].shape, [64, 32])

        let phi = try load("phi3_longrope")
        XCTAssertEqual(phi.plan.layers[0].linears.map(\.role), [.qkv, .o, .gateUp, .down])
        XCTAssertEqual(phi.config.rotaryDim, 4)
        XCTAssertEqual(phi.plan.layers.map(\.window), [5, 5])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("phi3_longrope/reference.json"))) as! [String: Any]
        guard case .longrope(let short, let long, 4, let attention) = phi.config.ropeScaling else { return XCTFail("\(String(describing: phi.config.ropeScaling))") }
        XCTAssertEqual(short, [1.0, 1.6])
        XCTAssertEqual(long, [2.0, 8.0])
        XCTAssertEqual(attention, (json["attention_scaling"] as! NSNumber).floatValue)
    }

    /// A longrope factor list of the wrong length is refused naming it.
    func testLongRopeFactorsOfWrongLengthAreRefused() throws {
        let src = Self.fixtures.appendingPathComponent("phi3_longrope/config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: src)) as! [String: Any]
        var rope = json["rope_parameters"] as! [String: Any]
        rope["short_factor"] = [1.0, 1.0, 1.0]
        json["rope_parameters"] = rope
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("longrope-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertThrowsError(try ModelConfig.fromHuggingFace(configJSON: url)) {
            XCTAssertEqual(($0 as? ModelError)?.field, "rope_parameters.short_factor", "\($0)")
        }
    }
}
