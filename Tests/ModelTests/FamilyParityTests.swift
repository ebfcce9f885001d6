import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels

/// Qwen2/Qwen2.5 (Architectures/Qwen2.swift: Llama's layer with q/k/v biases and no o bias)
/// against transformers' Qwen2ForCausalLM on tiny random checkpoints whose biases and norm gains
/// are non-zero (Fixtures/make_model_fixtures.py), so a missing or extra bias cannot pass.
extension ForwardParityTests {
    // f32, the same bound as Llama's and for the same reason: the same math as PyTorch up to the
    // summation order of 32- and 64-long dot products, ~1e-6 relative on logits of magnitude ~5
    // after two layers (measured: 4.2e-6 worst over both fixtures); 1e-4 leaves room for any BLAS
    // kernel choice.
    func testQwen2QKVBiasUntied() throws { try checkParity("qwen2", tol: 1e-4) }
    func testQwen2TiedOneKVHead() throws { try checkParity("qwen2_tied", tol: 1e-4) }

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

    /// A sliding window is refused naming the field (not silently run as full attention).
    func testQwen2SlidingWindowIsRefused() throws {
        let src = Self.fixtures.appendingPathComponent("qwen2/config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: src)) as! [String: Any]
        json["use_sliding_window"] = true
        json["sliding_window"] = 4
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("qwen2-window-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertThrowsError(try ModelConfig.fromHuggingFace(configJSON: url)) {
            XCTAssertEqual(($0 as? ModelError)?.field, "use_sliding_window", "\($0)")
        }
    }
}
