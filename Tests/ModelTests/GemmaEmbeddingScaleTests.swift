import Foundation
import XCTest
import ZOTuneBackend
@testable import ZOTuneModels

/// Gemma's √hidden embedding factor in the weights' dtype. transformers multiplies the looked-up
/// embeddings by √hidden cast to the hidden dtype (`normalizer`, Gemma 3's `embed_scale.to(dtype)`):
/// bf16(√32) = 5.65625, not 5.656854. The reference is what transformers feeds layer 0 when it runs
/// the tiny Gemma fixtures in bf16 and f16 (make_model_fixtures.py's "embedded_16bit"). ZOTune
/// keeps activations in f32, so its embedding stage is e·s exactly (e and s both 16-bit values: the
/// product of two 8-bit (bf16) or 11-bit (f16) significands fits f32's 24 bits) where transformers
/// rounds that product once to the dtype; rounding ZOTune's f32 result once the same way must then
/// give transformers' bits exactly — no tolerance is needed, and a factor off by one part in 10⁴
/// changes a share of the rounded values (the test requires the f32 factor to fail it).
final class GemmaEmbeddingScaleTests: XCTestCase {
    let backend = KernelBackend.cpu()

    func testEmbeddingFactorInWeightsDType() throws {
        for model in ["gemma", "gemma2", "gemma3"] {
            let dir = ForwardParityTests.fixtures.appendingPathComponent(model)
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("reference.json"))) as! [String: Any]
            let ids = ((json["unpadded"] as! [[String: Any]])[0]["input_ids"] as! [NSNumber]).map { Int32(truncating: $0) }
            let wanted = json["embedded_16bit"] as! [String: [[NSNumber]]]
            for dtype in [DType.bf16, .f16] {
                let ckpt = try HFCheckpoint(path: dir.path)
                let lm = try CausalLM(config: ckpt.config, reader: ckpt, backend: backend, dtype: dtype)
                let exact = Float((Double(lm.config.hiddenSize)).squareRoot())
                XCTAssertEqual(lm.embeddingScale, dtype.rounded(exact), "\(model) \(dtype)")
                XCTAssertNotEqual(dtype.rounded(exact), exact, "\(model) \(dtype): the fixture's √hidden must not be a \(dtype) value")

                let x = try backend.allocate([ids.count, lm.config.hiddenSize], tag: .activations, zeroed: false)
                let idT = try backend.tensor(ids, shape: [ids.count], tag: .scratch)
                let pos = try backend.tensor((0..<Int32(ids.count)).map { $0 }, shape: [ids.count], tag: .scratch)
                try lm.embed(x, ids: idT, positions: pos)
                let got = backend.toHost(x)
                let want = wanted[dtype.rawValue]!.flatMap { $0.map(\.floatValue) }
                XCTAssertEqual(got.count, want.count)
                let mismatches = zip(got, want).filter { dtype.rounded($0) != $1 }.count
                XCTAssertEqual(mismatches, 0, "\(model) \(dtype): \(mismatches) of \(want.count) embedded values differ from transformers'")

                // The f32 factor (what ZOTune used before) must fail the same comparison, or the
                // test could not tell the two apart: e·s/s·√h with e the table's 16-bit value.
                let unscaled = got.map { $0 / lm.embeddingScale! }
                let withF32 = zip(unscaled, want).filter { dtype.rounded($0 * exact) != $1 }.count
                XCTAssertGreaterThan(withF32, 0, "\(model) \(dtype): the f32 factor gives the same bits here")
                print("GemmaEmbeddingScaleTests \(model) \(dtype): factor \(lm.embeddingScale!), 0 of \(want.count) differ; the f32 factor \(exact) would differ in \(withF32)")
            }
        }
    }

    /// f32 weights and GGUF loads (dequantized to f32 by transformers and llama.cpp) keep the f32 factor.
    func testF32AndGGUFKeepTheExactFactor() throws {
        let dir = ForwardParityTests.fixtures.appendingPathComponent("gemma")
        let ckpt = try HFCheckpoint(path: dir.path)
        XCTAssertEqual(try CausalLM(config: ckpt.config, reader: ckpt, backend: backend).embeddingScale, Float(Double(32).squareRoot()))
        let g = try GGUFFile(path: dir.appendingPathComponent("model.gguf").path)
        XCTAssertEqual(try CausalLM(config: try g.modelConfig(), reader: g, backend: backend).embeddingScale, Float(Double(32).squareRoot()))
    }

    /// The rounding itself against Float16 (IEEE, hardware-checked) and bf16's definition (the top
    /// 16 bits of the f32, ties to even), on values either side of ties.
    func testRounded() {
        XCTAssertEqual(DType.bf16.rounded(Float(Double(640).squareRoot())), 25.25)
        XCTAssertEqual(DType.bf16.rounded(Float(bitPattern: 0x3F80_8000)), 1.0)                        // tie → even (down)
        XCTAssertEqual(DType.bf16.rounded(Float(bitPattern: 0x3F81_8000)), Float(bitPattern: 0x3F82_0000)) // tie → even (up)
        XCTAssertEqual(DType.bf16.rounded(Float(bitPattern: 0x3F80_8001)), Float(bitPattern: 0x3F81_0000))
        XCTAssertEqual(DType.f16.rounded(Float(Double(640).squareRoot())), 25.296875)
        XCTAssertEqual(DType.f32.rounded(0.1), 0.1)
    }
}
