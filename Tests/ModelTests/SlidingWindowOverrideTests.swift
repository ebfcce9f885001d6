import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels

/// `--sliding-window N` (ModelConfig.overridingSlidingWindow, which ModelFile applies): llama.cpp's converter drops Mistral's
/// window, so mistral_swa/model.gguf (make_family_gguf.py, written as the converter writes it) loads
/// with full attention; with the window given back it matches transformers' logits of the HF
/// checkpoint (reference.json) within the family bound of FamilyParityTests (1e-4: the same math
/// up to 32- to 128-long summation orders, measured ≤ 4.2e-6 there).
extension ForwardParityTests {
    private func gguf(_ model: String) -> String {
        Self.fixtures.appendingPathComponent(model).appendingPathComponent("model.gguf").path
    }

    /// The config a file states (the fixtures' GGUF vocabularies have no merges, so ModelFile's
    /// tokenizer would refuse them; ModelFile.overridingSlidingWindow is this same call).
    private func config(_ path: String) throws -> ModelConfig {
        path.hasSuffix(".gguf") ? try GGUFFile(path: path).modelConfig() : try HFCheckpoint(path: path).config
    }

    /// Largest |logit − transformers'| over the reference's padded batch.
    private func logitError(_ lm: CausalLM, reference model: String) throws -> Float {
        let ref = try reference(model)
        let v = lm.config.vocabSize
        let batch = TokenBatch(ids: ref.ids.flatMap { $0 }, mask: ref.mask.flatMap { $0.map(UInt8.init) },
                               batch: ref.ids.count, length: ref.ids[0].count)
        let logits = backend.toHost(try lm.allLogits(batch))
        var worst: Float = 0
        for b in 0..<batch.batch { for t in 0..<batch.length {
            guard let want = ref.logits[b][t] else { continue }
            let row = (b * batch.length + t) * v
            worst = max(worst, maxDiff(logits[row..<(row + v)], want))
        } }
        return worst
    }

    func testSlidingWindowOverrideGivesMistralGGUFItsWindow() throws {
        let path = gguf("mistral_swa"), g = try GGUFFile(path: path), stated = try g.modelConfig()
        XCTAssertNil(stated.slidingWindow, "the converter writes no window")
        // Without it the 7-token prompts attend past the window of 3: far outside the bound.
        let full = try logitError(CausalLM(config: stated, reader: g, backend: backend), reference: "mistral_swa")
        XCTAssertGreaterThan(full, 0.1, "full attention differs from the windowed reference")
        let windowed = try stated.overridingSlidingWindow(3, file: path)
        XCTAssertEqual((0..<2).map { windowed.window(layer: $0) }, [3, 3])
        let err = try logitError(CausalLM(config: windowed, reader: g, backend: backend), reference: "mistral_swa")
        print("SlidingWindowOverride mistral_swa gguf --sliding-window 3: max |Δlogit| \(err) (without: \(full))")
        XCTAssertLessThanOrEqual(err, 1e-4)
        // 0 and nil leave the file as it is.
        XCTAssertEqual(try stated.overridingSlidingWindow(0, file: path), stated)
        XCTAssertEqual(try stated.overridingSlidingWindow(nil, file: path), stated)
    }

    func testSlidingWindowOverrideRefusals() throws {
        func refused(_ path: String, _ n: Int, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try config(path).overridingSlidingWindow(n, file: path), line: line) {
                let e = $0 as? ModelError
                XCTAssertEqual(e?.field, "--sliding-window", "\($0)", line: line)
                XCTAssertTrue(e?.message.contains(fragment) == true, "\($0)", line: line)
            }
        }
        let hf = Self.fixtures.appendingPathComponent("mistral_swa").path
        // The HF config states 3: that value is accepted (nothing changes), another is refused, 0 too.
        XCTAssertEqual(try config(hf).overridingSlidingWindow(3, file: hf), try config(hf))
        refused(hf, 4, "window of 3 keys the file states")
        refused(hf, 0, "window of 3 keys the file states")
        refused(gguf("mistral_swa"), -1, "got -1")
        // A family without sliding-window attention (0 means none, so it is accepted).
        refused(gguf("olmo2"), 5, "olmo2 models have no sliding-window attention")
        XCTAssertEqual(try config(gguf("olmo2")).overridingSlidingWindow(0, file: "olmo2"), try config(gguf("olmo2")))
    }
}
