import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
import ZOTuneModels

/// Safetensors reading, sharded checkpoints and config.json parsing, against the fixtures written
/// by Fixtures/make_model_fixtures.py.
final class SafetensorsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models")
    static let tinyModels = ["opt", "opt_postln", "gpt2", "llama", "llama3"]

    var tempDir: URL!

    override func setUpWithError() throws {
        tempDir = FileManager.default.temporaryDirectory
            .appendingPathComponent("zotune-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDir)
    }

    // MARK: - Good checkpoints

    func testTinyCheckpointTensorsMatchGenerator() throws {
        for model in Self.tinyModels {
            let dir = Self.fixtures.appendingPathComponent(model)
            let ckpt = try HFCheckpoint(url: dir)
            let expected = try XCTUnwrap(try json(dir.appendingPathComponent("reference.json"))["tensors"] as? [String: Any])
            XCTAssertEqual(Set(ckpt.tensors.keys), Set(expected.keys), model)
            XCTAssertEqual(ckpt.files.count, 1)
            XCTAssertNil(ckpt.tokenizerURL)
            for (name, value) in expected {
                let e = try XCTUnwrap(value as? [String: Any])
                let t = try XCTUnwrap(ckpt.tensors[name])
                XCTAssertEqual(t.shape, e["shape"] as? [Int], "\(model) \(name)")
                XCTAssertEqual(t.type, .f32)
                XCTAssertTrue(t.file.hasSuffix("model.safetensors"))
                let values = try readFloats(ckpt, name)
                XCTAssertEqual(values.count, t.count)
                let first = try XCTUnwrap(e["first"] as? [Double]).map { Float($0) }
                XCTAssertEqual(Array(values.prefix(first.count)), first, "\(model) \(name)")
                let sum = values.reduce(0.0) { $0 + Double($1) }
                let expectedSum = try XCTUnwrap(e["sum"] as? Double)
                XCTAssertEqual(sum, expectedSum, accuracy: 1e-9 * Double(values.count) + 1e-12, "\(model) \(name)")
            }
        }
    }

    func testReadsAsF16AndBF16RoundToNearest() throws {
        let ckpt = try HFCheckpoint(url: Self.fixtures.appendingPathComponent("llama"))
        let name = "model.layers.0.self_attn.q_proj.weight"
        let f32 = try readFloats(ckpt, name)
        var f16 = [UInt16](repeating: 0, count: f32.count)
        var bf16 = [UInt16](repeating: 0, count: f32.count)
        try f16.withUnsafeMutableBytes { try ckpt.read(name, into: $0, as: .f16) }
        try bf16.withUnsafeMutableBytes { try ckpt.read(name, into: $0, as: .bf16) }
        XCTAssertEqual(f16, f32.map { zt_f32_to_f16($0) })
        XCTAssertEqual(bf16, f32.map { zt_f32_to_bf16($0) })
    }

    func testDtypesFixture() throws {
        let dir = Self.fixtures.appendingPathComponent("dtypes")
        let file = try SafetensorsFile(url: dir.appendingPathComponent("dtypes.safetensors"))
        let expected = try json(dir.appendingPathComponent("expected.json"))
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "dtype fixture"])
        XCTAssertEqual(Set(file.entries.keys), Set(expected.keys))
        XCTAssertEqual(file.unsupportedTensors, ["ids_i64": "I64"])
        XCTAssertNil(file.tensors["ids_i64"], "unsupported dtypes are listed in entries only")
        XCTAssertEqual(file.tensors["a_f16"]?.type, .f16)
        XCTAssertEqual(file.tensors["a_bf16"]?.type, .bf16)
        for name in ["a_f32", "a_f16", "a_bf16", "b_f32", "c_f16"] {
            let e = try XCTUnwrap(expected[name] as? [String: Any])
            XCTAssertEqual(file.entries[name]?.dtype, e["dtype"] as? String)
            XCTAssertEqual(file.tensors[name]?.shape, e["shape"] as? [Int])
            let want = try XCTUnwrap(e["values"] as? [Double]).map { Float($0) }
            XCTAssertEqual(try readFloats(file, name), want, name)
        }
        // Same-type reads are bit copies.
        var raw = [UInt16](repeating: 0, count: 6)
        try raw.withUnsafeMutableBytes { try file.read("a_bf16", into: $0, as: .bf16) }
        let stored = try file.rawBytes("a_bf16")
        XCTAssertEqual(raw.withUnsafeBytes { Array($0) }, Array(stored))

        assertModelError(try readFloats(file, "ids_i64"), file: "dtypes.safetensors",
                         field: "tensor ids_i64: dtype", message: "I64")
        assertModelError(try readFloats(file, "nope"), file: "dtypes.safetensors", field: "tensor nope")
        // Wrong destination size.
        var small = [Float](repeating: 0, count: 5)
        assertModelError(try small.withUnsafeMutableBytes { try file.read("a_f32", into: $0, as: .f32) },
                         file: "dtypes.safetensors", field: "tensor a_f32")
    }

    func testUnalignedDataAndDestination() throws {
        let values: [Float] = (0..<37).map { Float($0) * 0.37 - 3 }
        let halves = values.map { zt_f32_to_f16($0) }
        var data = [UInt8](repeating: 0xAB, count: 1)  // one stray byte puts everything after it off alignment
        data += values.withUnsafeBytes { Array($0) }
        let halfStart = data.count
        data += halves.withUnsafeBytes { Array($0) }
        let header: [String: Any] = [
            "w": ["dtype": "F32", "shape": [37], "data_offsets": [1, 1 + 37 * 4]],
            "h": ["dtype": "F16", "shape": [37], "data_offsets": [halfStart, halfStart + 37 * 2]],
        ]
        let url = tempDir.appendingPathComponent("odd.safetensors")
        try writeSafetensors(url, header: header, data: data, alignDataSection: true)
        let file = try SafetensorsFile(url: url)
        XCTAssertNotEqual(Int(bitPattern: try file.rawBytes("w").baseAddress) % 4, 0, "the test needs misaligned data")
        XCTAssertNotEqual(Int(bitPattern: try file.rawBytes("h").baseAddress) % 2, 0, "the test needs misaligned data")
        XCTAssertEqual(try readFloats(file, "w"), values)
        XCTAssertEqual(try readFloats(file, "h"), halves.map { zt_f16_to_f32($0) })
        // Destination off alignment too.
        var buffer = [UInt8](repeating: 0, count: 37 * 4 + 1)
        try buffer.withUnsafeMutableBytes {
            try file.read("w", into: UnsafeMutableRawBufferPointer(rebasing: $0[1...]), as: .f32)
        }
        // A tensor larger than one staging chunk (2^20 elements), misaligned.
        let bigCount = (1 << 20) + 3
        let bigValues = (0..<bigCount).map { Float($0 % 256) - 128 }  // exact in bf16
        let big = bigValues.map { zt_f32_to_bf16($0) }
        var bigData: [UInt8] = [0]
        bigData += big.withUnsafeBytes { Array($0) }
        let bigURL = tempDir.appendingPathComponent("big.safetensors")
        try writeSafetensors(bigURL, header: ["b": ["dtype": "BF16", "shape": [bigCount], "data_offsets": [1, 1 + 2 * bigCount]]],
                             data: bigData, alignDataSection: true)
        let bigFile = try SafetensorsFile(url: bigURL)
        XCTAssertTrue(try readFloats(bigFile, "b") == bigValues, "chunked staging of a large misaligned tensor")
        let back: [Float] = buffer[1...].withUnsafeBytes { raw in (0..<37).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        XCTAssertEqual(back, values)
    }

    func testShardedCheckpointMatchesSingleFile() throws {
        let single = try HFCheckpoint(url: Self.fixtures.appendingPathComponent("opt"))
        let sharded = try HFCheckpoint(url: Self.fixtures.appendingPathComponent("opt_sharded"))
        XCTAssertGreaterThanOrEqual(sharded.files.count, 2)
        XCTAssertEqual(sharded.config, single.config)
        XCTAssertEqual(Set(sharded.tensors.keys), Set(single.tensors.keys))
        XCTAssertEqual(Set(sharded.tensors.values.map(\.file)).count, sharded.files.count)
        for name in single.tensors.keys {
            XCTAssertEqual(sharded.tensors[name]?.shape, single.tensors[name]?.shape)
            XCTAssertEqual(try readFloats(sharded, name), try readFloats(single, name), name)
        }
    }

    func testOpensSingleFilePath() throws {
        let path = Self.fixtures.appendingPathComponent("gpt2/model.safetensors")
        let ckpt = try HFCheckpoint(url: path)
        XCTAssertEqual(ckpt.config.architecture, .gpt2)
        XCTAssertEqual(ckpt.tensors["transformer.wte.weight"]?.shape, [512, 32])
        XCTAssertEqual(ckpt.directory.standardizedFileURL, Self.fixtures.appendingPathComponent("gpt2").standardizedFileURL)
    }

    func testTokenizerURLWhenPresent() throws {
        let dir = try copyFixture("llama")
        try Data("{}".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        let ckpt = try HFCheckpoint(url: dir)
        XCTAssertEqual(ckpt.tokenizerURL?.lastPathComponent, "tokenizer.json")
    }

    // MARK: - Configs

    func testConfigsParse() throws {
        func config(_ model: String) throws -> ModelConfig {
            try ModelConfig.fromHuggingFace(configJSON: Self.fixtures.appendingPathComponent("\(model)/config.json"))
        }
        let opt = ModelConfig(architecture: .opt, vocabSize: 512, hiddenSize: 32, numLayers: 2, numHeads: 4,
                              intermediateSize: 64, maxPositions: 64, normEps: 1e-5, activation: .relu,
                              tieWordEmbeddings: true, attentionBias: true, mlpBias: true, doLayerNormBefore: true,
                              wordEmbedProjDim: nil, positionOffset: 2, bosTokenId: 2, eosTokenId: 2, padTokenId: 1)
        XCTAssertEqual(try config("opt"), opt)
        XCTAssertEqual(try config("opt_sharded"), opt)
        var postLN = opt
        postLN.doLayerNormBefore = false
        postLN.wordEmbedProjDim = 16
        XCTAssertEqual(try config("opt_postln"), postLN)
        XCTAssertEqual(try config("gpt2"),
                       ModelConfig(architecture: .gpt2, vocabSize: 512, hiddenSize: 32, numLayers: 2, numHeads: 4,
                                   intermediateSize: 128, maxPositions: 64, normEps: 1e-5, activation: .geluTanh,
                                   tieWordEmbeddings: true, positionOffset: 0, bosTokenId: 0, eosTokenId: 0, padTokenId: 0))
        let llama = ModelConfig(architecture: .llama, vocabSize: 512, hiddenSize: 32, numLayers: 2, numHeads: 4,
                                numKVHeads: 2, headDim: 8, intermediateSize: 64, maxPositions: 128, normEps: 1e-6,
                                activation: .silu, tieWordEmbeddings: false, ropeTheta: 10000, ropeScaling: nil,
                                attentionBias: false, mlpBias: false, positionOffset: 0,
                                bosTokenId: 1, eosTokenId: 2, padTokenId: 0)
        XCTAssertEqual(try config("llama"), llama)
        var llama3 = llama
        llama3.numKVHeads = 1
        llama3.headDim = 16
        llama3.rotaryDim = 16
        llama3.maxPositions = 512
        llama3.normEps = 1e-5
        llama3.tieWordEmbeddings = true
        llama3.attentionBias = true
        llama3.ropeScaling = .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64)
        XCTAssertEqual(try config("llama3"), llama3)
    }

    func testConfigTransformers4LayoutAndVariants() throws {
        // transformers 4: rope_theta and rope_scaling at the top level; eos as a list; pad -1.
        var c = try json(Self.fixtures.appendingPathComponent("llama3/config.json"))
        c.removeValue(forKey: "rope_parameters")
        c["rope_theta"] = 500000.0
        c["rope_scaling"] = ["rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192]
        c["eos_token_id"] = [2, 7]
        c["pad_token_id"] = -1
        var parsed = try ModelConfig.fromHuggingFace(configJSON: try writeJSON(c, "t4.json"))
        XCTAssertEqual(parsed.ropeTheta, 500000)
        XCTAssertEqual(parsed.ropeScaling, .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
        XCTAssertEqual(parsed.eosTokenId, 2)
        XCTAssertNil(parsed.padTokenId)

        c["rope_scaling"] = ["type": "linear", "factor": 2.0]
        parsed = try ModelConfig.fromHuggingFace(configJSON: try writeJSON(c, "linear.json"))
        XCTAssertEqual(parsed.ropeScaling, .linear(factor: 2))
        c["rope_scaling"] = NSNull()
        parsed = try ModelConfig.fromHuggingFace(configJSON: try writeJSON(c, "none.json"))
        XCTAssertNil(parsed.ropeScaling)

        c["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0]
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(c, "yarn.json")),
                         file: "yarn.json", field: "rope_scaling.rope_type", message: "yarn")
        c["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0]
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(c, "l3.json")),
                         file: "l3.json", field: "rope_scaling.low_freq_factor")

        // GPT-2 "gelu" is the erf form; n_inner given.
        var g = try json(Self.fixtures.appendingPathComponent("gpt2/config.json"))
        g["activation_function"] = "gelu"
        g["n_inner"] = 96
        parsed = try ModelConfig.fromHuggingFace(configJSON: try writeJSON(g, "gpt2.json"))
        XCTAssertEqual(parsed.activation, .geluErf)
        XCTAssertEqual(parsed.intermediateSize, 96)

        // Mistral: a window below the context slides every layer; none (or one as long as the
        // context) is Llama's full attention; a window of 0 is refused naming the field.
        var m = try json(Self.fixtures.appendingPathComponent("llama/config.json"))
        m["architectures"] = ["MistralForCausalLM"]
        m["model_type"] = "mistral"
        m["sliding_window"] = NSNull()
        parsed = try ModelConfig.fromHuggingFace(configJSON: try writeJSON(m, "mistral.json"))
        XCTAssertEqual(parsed.architecture, .mistral)
        XCTAssertNil(parsed.slidingWindow)
        m["sliding_window"] = 128
        XCTAssertNil(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(m, "mistral_full.json")).slidingWindow)
        m["sliding_window"] = 16
        parsed = try ModelConfig.fromHuggingFace(configJSON: try writeJSON(m, "mistral_sw.json"))
        XCTAssertEqual((0..<2).map { parsed.window(layer: $0) }, [16, 16])
        m["sliding_window"] = 0
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(m, "mistral_sw0.json")),
                         file: "mistral_sw0.json", field: "sliding_window")
    }

    func testConfigErrors() throws {
        var c = try json(Self.fixtures.appendingPathComponent("opt/config.json"))
        c["architectures"] = ["BertForMaskedLM"]
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(c, "bert.json")),
                         file: "bert.json", field: "architectures", message: "LlamaForCausalLM")

        var l = try json(Self.fixtures.appendingPathComponent("llama/config.json"))
        l.removeValue(forKey: "hidden_size")
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(l, "nohidden.json")),
                         file: "nohidden.json", field: "hidden_size", message: "missing")
        l = try json(Self.fixtures.appendingPathComponent("llama/config.json"))
        l["num_key_value_heads"] = 3
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(l, "kv.json")),
                         file: "kv.json", field: "num_key_value_heads")
        l["num_key_value_heads"] = "two"
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(l, "kvs.json")),
                         file: "kvs.json", field: "num_key_value_heads", message: "integer")

        var g = try json(Self.fixtures.appendingPathComponent("gpt2/config.json"))
        g.removeValue(forKey: "n_layer")
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: try writeJSON(g, "gpt2.json")),
                         file: "gpt2.json", field: "n_layer")

        let bad = tempDir.appendingPathComponent("broken.json")
        try Data("{\"architectures\": [".utf8).write(to: bad)
        assertModelError(try ModelConfig.fromHuggingFace(configJSON: bad), file: "broken.json", field: "config.json")

        // Through HFCheckpoint: the error names the checkpoint's config.json.
        let dir = try copyFixture("opt")
        var o = try json(dir.appendingPathComponent("config.json"))
        o["architectures"] = ["T5ForConditionalGeneration"]
        try writeJSONFile(o, dir.appendingPathComponent("config.json"))
        assertModelError(try HFCheckpoint(url: dir), file: "config.json", field: "architectures")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("config.json"))
        assertModelError(try HFCheckpoint(url: dir), file: "config.json", field: "config.json")
    }

    // MARK: - Corrupt files

    func testTruncatedFile() throws {
        let good = try goodFileBytes()
        let tiny = tempDir.appendingPathComponent("tiny.safetensors")
        try Data(good.prefix(5)).write(to: tiny)
        assertModelError(try SafetensorsFile(url: tiny), file: "tiny.safetensors", field: "header length")

        let cut = tempDir.appendingPathComponent("cut.safetensors")
        try Data(good.prefix(good.count - 100)).write(to: cut)
        assertModelError(try SafetensorsFile(url: cut), file: "cut.safetensors", field: "data_offsets", message: "past the end")

        let empty = tempDir.appendingPathComponent("empty.safetensors")
        try Data().write(to: empty)
        assertModelError(try SafetensorsFile(url: empty), file: "empty.safetensors", field: "header length")
    }

    func testHeaderLengthBeyondFile() throws {
        var bytes = try goodFileBytes()
        let huge = UInt64(bytes.count).littleEndian
        withUnsafeBytes(of: huge) { bytes.replaceSubrange(0..<8, with: $0) }
        let url = tempDir.appendingPathComponent("long.safetensors")
        try Data(bytes).write(to: url)
        assertModelError(try SafetensorsFile(url: url), file: "long.safetensors", field: "header length")

        withUnsafeBytes(of: UInt64.max) { bytes.replaceSubrange(0..<8, with: $0) }
        try Data(bytes).write(to: url)
        assertModelError(try SafetensorsFile(url: url), file: "long.safetensors", field: "header length")
    }

    func testMalformedHeader() throws {
        let (_, data) = try goodHeaderAndData()
        let url = tempDir.appendingPathComponent("bad.safetensors")
        try writeRawHeader(url, header: Array("{\"a\": {\"dtype\": \"F32\",".utf8), data: data)
        assertModelError(try SafetensorsFile(url: url), file: "bad.safetensors", field: "header", message: "JSON")
        try writeRawHeader(url, header: [0x7B, 0xFF, 0xFE, 0x7D], data: data)  // "{" invalid UTF-8 "}"
        assertModelError(try SafetensorsFile(url: url), file: "bad.safetensors", field: "header", message: "UTF-8")
        try writeRawHeader(url, header: Array("[1, 2]".utf8), data: data)
        assertModelError(try SafetensorsFile(url: url), file: "bad.safetensors", field: "header")
        try writeRawHeader(url, header: Array("{\"__metadata__\": {\"n\": 3}}".utf8), data: data)
        assertModelError(try SafetensorsFile(url: url), file: "bad.safetensors", field: "__metadata__")
    }

    func testOffsetOutsideFile() throws {
        let (header, data) = try goodHeaderAndData()
        let name = "model.decoder.layers.0.fc1.weight"
        var h = header
        var e = try XCTUnwrap(h[name] as? [String: Any])
        let size = 64 * 32 * 4
        e["data_offsets"] = [data.count - size + 4, data.count + 4]
        h[name] = e
        let url = tempDir.appendingPathComponent("out.safetensors")
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "out.safetensors", field: "tensor \(name): data_offsets")

        e["data_offsets"] = [size, 0]
        h[name] = e
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "out.safetensors", field: "tensor \(name): data_offsets")

        e["data_offsets"] = [-4, size - 4]
        h[name] = e
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "out.safetensors", field: "tensor \(name): data_offsets")
    }

    func testOverlappingTensors() throws {
        let (header, data) = try goodHeaderAndData()
        var h = header
        // Point layer 1's q_proj at layer 0's q_proj bytes shifted by one element.
        let a = try XCTUnwrap(h["model.decoder.layers.0.self_attn.q_proj.weight"] as? [String: Any])
        let offsets = try XCTUnwrap(a["data_offsets"] as? [Int])
        var b = try XCTUnwrap(h["model.decoder.layers.1.self_attn.q_proj.weight"] as? [String: Any])
        b["data_offsets"] = [offsets[0] + 4, offsets[1] + 4]
        h["model.decoder.layers.1.self_attn.q_proj.weight"] = b
        let url = tempDir.appendingPathComponent("overlap.safetensors")
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "overlap.safetensors", field: "data_offsets", message: "overlap")
    }

    func testSizeNotMatchingShape() throws {
        let (header, data) = try goodHeaderAndData()
        var h = header
        let name = "model.decoder.layers.0.fc1.weight"
        var e = try XCTUnwrap(h[name] as? [String: Any])
        e["shape"] = [64, 31]
        h[name] = e
        let url = tempDir.appendingPathComponent("shape.safetensors")
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "shape.safetensors", field: "tensor \(name)", message: "shape")

        e["shape"] = [64, -32]
        h[name] = e
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "shape.safetensors", field: "tensor \(name): shape")
    }

    func testUnknownDtype() throws {
        let (header, data) = try goodHeaderAndData()
        var h = header
        let name = "model.decoder.final_layer_norm.weight"
        var e = try XCTUnwrap(h[name] as? [String: Any])
        e["dtype"] = "F17"
        h[name] = e
        let url = tempDir.appendingPathComponent("dtype.safetensors")
        try writeSafetensors(url, header: h, data: data)
        assertModelError(try SafetensorsFile(url: url), file: "dtype.safetensors", field: "tensor \(name): dtype", message: "F17")

        // A known but unsupported dtype opens; reading it names tensor and dtype.
        e["dtype"] = "I32"
        h[name] = e
        try writeSafetensors(url, header: h, data: data)
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.unsupportedTensors, [name: "I32"])
        assertModelError(try readFloats(file, name), file: "dtype.safetensors", field: "tensor \(name): dtype", message: "I32")
    }

    func testMissingTensorOnRead() throws {
        let ckpt = try HFCheckpoint(url: Self.fixtures.appendingPathComponent("opt"))
        assertModelError(try readFloats(ckpt, "lm_head.weight"), file: "opt", field: "tensor lm_head.weight")
        let sharded = try HFCheckpoint(url: Self.fixtures.appendingPathComponent("opt_sharded"))
        assertModelError(try readFloats(sharded, "model.decoder.nope"), file: "opt_sharded", field: "tensor model.decoder.nope")
    }

    func testShardedIndexErrors() throws {
        let dir = try copyFixture("opt_sharded")
        let indexURL = dir.appendingPathComponent("model.safetensors.index.json")
        let original = try json(indexURL)
        var map = try XCTUnwrap(original["weight_map"] as? [String: Any])

        // A shard that does not exist.
        var index = original
        map["model.decoder.embed_tokens.weight"] = "model-00009-of-00009.safetensors"
        index["weight_map"] = map
        try writeJSONFile(index, indexURL)
        assertModelError(try HFCheckpoint(url: dir), file: "model.safetensors.index.json",
                         field: "weight_map: model-00009-of-00009.safetensors", message: "does not exist")

        // A shard that exists but lacks the tensor.
        map = try XCTUnwrap(original["weight_map"] as? [String: Any])
        map["model.decoder.embed_tokens.weight"] = "model-00003-of-00003.safetensors"
        index["weight_map"] = map
        try writeJSONFile(index, indexURL)
        assertModelError(try HFCheckpoint(url: dir), file: "model.safetensors.index.json",
                         field: "weight_map: model.decoder.embed_tokens.weight", message: "does not hold")

        // Shard names are file names, not paths.
        map["model.decoder.embed_tokens.weight"] = "../opt/model.safetensors"
        index["weight_map"] = map
        try writeJSONFile(index, indexURL)
        assertModelError(try HFCheckpoint(url: dir), file: "model.safetensors.index.json",
                         field: "weight_map: model.decoder.embed_tokens.weight")

        index.removeValue(forKey: "weight_map")
        try writeJSONFile(index, indexURL)
        assertModelError(try HFCheckpoint(url: dir), file: "model.safetensors.index.json", field: "weight_map")
    }

    func testDirectoryWithoutWeights() throws {
        let dir = tempDir.appendingPathComponent("empty_model")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        assertModelError(try HFCheckpoint(url: dir), file: "empty_model", field: "model.safetensors")
        assertModelError(try HFCheckpoint(url: dir.appendingPathComponent("nothing")), file: "nothing", field: "path")
    }

    // MARK: - Fixture format (what the architecture tests will read)

    func testReferenceFixturesAreWellFormed() throws {
        for model in Self.tinyModels {
            let ref = try json(Self.fixtures.appendingPathComponent("\(model)/reference.json"))
            let batch = try XCTUnwrap(ref["batch"] as? [String: Any])
            XCTAssertEqual(batch["lengths"] as? [Int], [7, 4, 1])
            let logits = try XCTUnwrap(batch["logits"] as? [[Any]])
            XCTAssertEqual(logits.count, 3)
            XCTAssertEqual((logits[0][0] as? [Double])?.count, 512)
            XCTAssertTrue(logits[2][0] is NSNull, "pad rows are null")
            XCTAssertEqual((ref["unpadded"] as? [Any])?.count, 3)
        }
        let smol = Self.fixtures.appendingPathComponent("smollm2")
        let ref = try json(smol.appendingPathComponent("reference.json"))
        let prompts = try XCTUnwrap(ref["prompts"] as? [[String: Any]])
        XCTAssertEqual(prompts.count, 10)
        for p in prompts {
            XCTAssertEqual((p["top20"] as? [Any])?.count, 20)
            if let name = p["logits_file"] as? String {
                let size = try FileManager.default.attributesOfItem(atPath: smol.appendingPathComponent(name).path)[.size] as? Int
                XCTAssertEqual(size, 49152 * 4)
            }
        }
        XCTAssertEqual(((ref["greedy"] as? [String: Any])?["new_ids"] as? [Int])?.count, 8)
    }

    // MARK: - Helpers

    private func readFloats(_ reader: CheckpointReader, _ name: String) throws -> [Float] {
        let count = reader.tensors[name]?.count ?? 0
        var out = [Float](repeating: .nan, count: count)
        try out.withUnsafeMutableBytes { try reader.read(name, into: $0, as: .f32) }
        return out
    }

    private func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    private func writeJSONFile(_ object: [String: Any], _ url: URL) throws {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    private func writeJSON(_ object: [String: Any], _ name: String) throws -> URL {
        let url = tempDir.appendingPathComponent(name)
        try writeJSONFile(object, url)
        return url
    }

    private func copyFixture(_ model: String) throws -> URL {
        let dst = tempDir.appendingPathComponent(model)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(model), to: dst)
        return dst
    }

    private var goodFile: URL { Self.fixtures.appendingPathComponent("opt/model.safetensors") }

    private func goodFileBytes() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: goodFile))
    }

    /// The good file's header (as a JSON object) and its data section.
    private func goodHeaderAndData() throws -> ([String: Any], [UInt8]) {
        let bytes = try goodFileBytes()
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as? [String: Any])
        return (header, Array(bytes[(8 + n)...]))
    }

    private func writeRawHeader(_ url: URL, header: [UInt8], data: [UInt8]) throws {
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out += $0 }
        out += header
        out += data
        try Data(out).write(to: url)
    }

    /// A safetensors file from a header object; `alignDataSection` pads the header with spaces so
    /// the data section starts 8-aligned in the file, as the safetensors library writes it.
    private func writeSafetensors(_ url: URL, header: [String: Any], data: [UInt8], alignDataSection: Bool = false) throws {
        var text = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        if alignDataSection {
            text += [UInt8](repeating: 0x20, count: (8 - text.count % 8) % 8)
        }
        try writeRawHeader(url, header: text, data: data)
    }

    private func assertModelError<T>(_ expression: @autoclosure () throws -> T, file: String, field: String,
                                     message: String? = nil, line: UInt = #line) {
        do {
            _ = try expression()
            XCTFail("expected a ModelError naming \(file) and \(field)", line: line)
        } catch let error as ModelError {
            XCTAssertTrue(error.file.hasSuffix(file), "file: \(error)", line: line)
            XCTAssertTrue(error.field.contains(field), "field: \(error)", line: line)
            if let message {
                XCTAssertTrue(error.message.contains(message), "message: \(error)", line: line)
            }
        } catch {
            XCTFail("expected a ModelError, got \(error)", line: line)
        }
    }
}
