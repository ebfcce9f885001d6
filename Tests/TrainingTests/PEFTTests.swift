import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// Prefix and prompt tuning against the plain model (ZO-FAMILY.md §5.2–5.3), and every adapter
/// exported in HF PEFT format against `peft` itself.
final class PEFTTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    /// Logits rows of the last `count` positions of each sequence of a left-padded batch.
    func tail(_ logits: [Float], batch: TokenBatch, count: [Int], vocab: Int) -> [[Float]] {
        (0..<batch.batch).map { b in
            let end = (b + 1) * batch.length
            return Array(logits[(end - count[b]) * vocab..<end * vocab])
        }
    }

    func maxDiff(_ a: [[Float]], _ b: [[Float]]) -> Float {
        zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
    }

    /// A prefix made from tokens t: the model on x equals the plain model on [t, x] (positions of x
    /// start at P), for every architecture and under left padding; with a cache too.
    func testPrefixFromTokensEqualsThePlainModelOnThoseTokens() throws {
        let xs: [[Int32]] = [[1, 5, 9, 200, 7], [1, 4, 11]]
        for arch in ["llama", "opt", "gpt2"] {
            let lm = try tinyModel(arch)
            let prefix = try PrefixTuning(model: lm, options: PrefixOptions(tokens: 3, seed: 4))
            let t = prefix.initialTokens
            XCTAssertEqual(t.count, 3)
            let vocab = lm.config.vocabSize
            let plainBatch = TokenBatch.leftPadded(xs.map { t + $0 }, padId: 0)
            let plain = tail(backend.toHost(try lm.allLogits(plainBatch)), batch: plainBatch, count: xs.map(\.count), vocab: vocab)
            lm.hook = prefix
            let batch = TokenBatch.leftPadded(xs, padId: 0)
            let tuned = tail(backend.toHost(try lm.allLogits(batch)), batch: batch, count: xs.map(\.count), vocab: vocab)
            XCTAssertLessThan(maxDiff(plain, tuned), 2e-5, "\(arch): prefix of t, then x = the model on [t, x]")
            // The table holds each layer's cached keys and values of t: the plain model's own cache.
            lm.hook = nil
            let cache = try lm.makeCache(batch: 1, capacity: t.count)
            _ = try lm.hiddenStates(.leftPadded([t], padId: 0), cache: cache)
            let table = backend.toHost(prefix.table), kvd = lm.config.numKVHeads * lm.config.headDim
            for l in 0..<lm.config.numLayers {
                let keys = backend.toHost(cache.keys[l]), values = backend.toHost(cache.values[l])
                for p in 0..<t.count {
                    let k0: Int = p * prefix.prefix.stride + 2 * l * kvd
                    let ours: [Float] = Array(table[k0..<k0 + 2 * kvd])
                    let cached: [Float] = Array(keys[p * kvd..<(p + 1) * kvd]) + Array(values[p * kvd..<(p + 1) * kvd])
                    XCTAssertEqual(ours, cached, "\(arch) layer \(l) position \(p): keys and values")
                }
            }
            // Generation's path: the prefix goes into the cache, then tokens one at a time.
            lm.hook = prefix
            let x = xs[0]
            let gen = try lm.makeCache(batch: 1, capacity: x.count)
            _ = try lm.hiddenStates(.leftPadded([Array(x.dropLast())], padId: 0), cache: gen)
            let last = backend.toHost(try lm.lastLogits(.leftPadded([[x.last!]], padId: 0), cache: gen))
            XCTAssertLessThan(zip(last, plain[0].suffix(vocab)).map { abs($0 - $1) }.max()!, 2e-5, "\(arch): cached generation path")
        }
    }

    /// Prompt rows = embeddings of tokens t: the model on x equals the plain model on [t, x]
    /// (soft tokens before BOS, real positions from P).
    func testPromptFromEmbeddingsEqualsThePlainModelOnThoseTokens() throws {
        let xs: [[Int32]] = [[1, 5, 9, 200, 7], [1, 4, 11]]
        for arch in ["llama", "opt", "gpt2"] {
            let lm = try tinyModel(arch)
            let prompt = try PromptTuning(model: lm, options: PromptOptions(tokens: 4, seed: 2))
            let t = prompt.initialTokens, vocab = lm.config.vocabSize
            let plainBatch = TokenBatch.leftPadded(xs.map { t + $0 }, padId: 0)
            let plain = tail(backend.toHost(try lm.allLogits(plainBatch)), batch: plainBatch, count: xs.map(\.count), vocab: vocab)
            // The rows are the embedding table's rows of t, copied exactly.
            let table = backend.toHost(lm.weights[lm.embeddingTableName]), width = prompt.embeddings.shape[1]
            let rows = backend.toHost(prompt.embeddings)
            for (i, id) in t.enumerated() {
                XCTAssertEqual(Array(rows[i * width..<(i + 1) * width]), Array(table[Int(id) * width..<(Int(id) + 1) * width]))
            }
            lm.hook = prompt
            let batch = TokenBatch.leftPadded(xs, padId: 0)
            let tuned = tail(backend.toHost(try lm.allLogits(batch)), batch: batch, count: xs.map(\.count), vocab: vocab)
            XCTAssertLessThan(maxDiff(plain, tuned), 2e-5, "\(arch): prompt of t's embeddings, then x = the model on [t, x]")
            // Moving the soft tokens changes the output (the forward reads the trainable rows).
            backend.perturb(prompt.embeddings, seed: 1, tensorId: 0, stream: 0, scale: 0.5)
            let moved = tail(backend.toHost(try lm.allLogits(batch)), batch: batch, count: xs.map(\.count), vocab: vocab)
            XCTAssertGreaterThan(maxDiff(plain, moved), 1e-3, arch)
            try prompt.reset()
            let again = tail(backend.toHost(try lm.allLogits(batch)), batch: batch, count: xs.map(\.count), vocab: vocab)
            XCTAssertEqual(again, tuned, "\(arch): reset restores the initial rows")
        }
    }

    /// Every optimizer of the family steps on each adapter's tensors alone: they move, the base
    /// does not.
    func testEveryOptimizerStepsOnEachAdapter() throws {
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7, 8], [3, 4, 11, 12]], padId: 0)
        for peft in [PEFTConfig.lora(LoRAOptions(rank: 2, alpha: 4)), .prefix(PrefixOptions(tokens: 2)), .prompt(PromptOptions(tokens: 3))] {
            for config in TrainerTests.configs {
                let lm = try tinyModel()
                let base = weights(lm)
                let adapter = try peft.make(model: lm)
                lm.hook = adapter
                let before = adapter.set.entries.map { backend.toHost($0.tensor) }
                var c = config
                if var o = config.options(DiZOOptions.self) { o.layers = peft.name == "lora" ? ["q", "v"] : ["prompt_embeddings"]; c = .dizo(o) }
                let optimizer = try c.make(set: adapter.set, backend: backend)
                for t in 0..<3 {
                    _ = try optimizer.step(StepContext(step: t, runSeed: 2, lr: 1e-2, loss: { try languageModelLoss(lm, batch) },
                                                       searchLoss: { _ in try languageModelLoss(lm, batch) }))
                }
                XCTAssertTrue(weights(lm) == base, "\(peft.name) \(config): the base moved")
                XCTAssertNotEqual(adapter.set.entries.map { backend.toHost($0.tensor) }, before, "\(peft.name) \(config): the adapter did not move")
            }
        }
    }
}

extension PEFTTests {
    /// Adapters written in HF PEFT format load with `peft.PeftModel.from_pretrained` on the
    /// transformers model and give ZOTune's logits within 1e-4 (Fixtures/check_peft.py), on
    /// Llama (GQA), OPT and GPT-2 (Conv1D); and they load back into ZOTune unchanged. Skipped when
    /// no reference Python with torch, transformers and peft is found.
    func testExportedAdaptersLoadInPEFTWithTheSameLogits() throws {
        guard let python = referencePython() else { throw XCTSkip("no reference Python with torch/transformers/peft") }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: python)
        check.arguments = ["-c", "import peft"]
        check.standardError = FileHandle.nullDevice
        try check.run()
        check.waitUntilExit()
        if check.terminationStatus != 0 { throw XCTSkip("the reference Python has no peft (Tests/setup.sh installs it)") }

        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ids: [Int32] = [1, 5, 77, 300, 12, 9]
        var jobs: [[String: Any]] = [], ours: [[Float]] = [], labels: [String] = []
        // Phi-3's q selects its fused qkv_proj (the role it covers); the windowed Mistral's
        // 6-token input crosses its 3-key window, also behind the prefix.
        for arch in ["llama", "opt", "gpt2", "qwen2", "qwen3", "mistral_swa", "phi3", "gemma", "gemma2", "gemma3", "olmo2", "gptneox"] {
            let targets = arch == "gpt2" ? ["c_attn", "o"] : ["q", "v", "o"]
            for config in [PEFTConfig.lora(LoRAOptions(rank: 4, alpha: 8, targets: targets)), .prefix(PrefixOptions(tokens: 3)),
                           .prompt(PromptOptions(tokens: 4))] {
                let lm = try tinyModel(arch)
                let adapter = try config.make(model: lm)
                // Off the initialisation (B = 0 would hide a wrong LoRA layout).
                for (i, e) in adapter.set.entries.enumerated() {
                    backend.perturb(e.tensor, seed: 5, tensorId: UInt32(i), stream: 0, scale: 0.3)
                }
                lm.hook = adapter
                let logits = backend.toHost(try lm.allLogits(.leftPadded([ids], padId: 0)))
                let out = dir.appendingPathComponent("\(arch)-\(config.name)")
                try PEFTExport.write(adapter, model: lm, baseModel: modelFixtures.appendingPathComponent("models/\(arch)").path, to: out)
                jobs.append(["base": modelFixtures.appendingPathComponent("models/\(arch)").path, "adapter": out.path, "ids": ids])
                ours.append(logits)
                labels.append("\(arch) \(config.name)")
                // Back into ZOTune: the same adapter, the same logits.
                let again = try tinyModel(arch)
                again.hook = try PEFTExport.load(out, model: again)
                XCTAssertEqual(backend.toHost(try again.allLogits(.leftPadded([ids], padId: 0))), logits, "\(arch) \(config.name): reload")
            }
        }
        let (status, data) = try runReferenceScript(python, "check_peft.py", [], input: try JSONSerialization.data(withJSONObject: jobs))
        XCTAssertEqual(status, 0, "peft could not load the adapters")
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(results.count, jobs.count)
        for (i, r) in results.enumerated() {
            let theirs = (r["logits"] as! [NSNumber]).map(\.floatValue)
            XCTAssertEqual(theirs.count, ours[i].count, labels[i])
            // f32 on both sides, logits ≤ 5: the forward-parity bound (ForwardParityTests' derivation);
            // measured 1.3e-6–4.1e-6 across OpenBLAS and ATen kernel sets (docs/testing.md), while a
            // wrong LoRA scaling, prefix position or virtual-token count moves them by the adapter's
            // whole effect, orders of magnitude more.
            print("PEFTTests \(labels[i]): max |Δlogit| \(zip(ours[i], theirs).map { abs($0 - $1) }.max() ?? 1) on max |logit| \(theirs.map(abs).max() ?? 0)")
            XCTAssertLessThanOrEqual(zip(ours[i], theirs).map { abs($0 - $1) }.max() ?? 1, 1e-4, "\(labels[i]) (\(r["peft_type"] ?? ""))")
        }
    }
}

extension PEFTTests {
    /// Adapters over a base kept in GGML blocks (the tiny Llama GGUF, six formats): the adapted
    /// forward equals the adapted forward over the same file loaded in f32, a ZO step moves the
    /// adapter and leaves the blocks as they were, and full tuning of such a base is refused.
    func testAdaptersOverAQuantizedBase() throws {
        let g = try GGUFFile(path: modelFixtures.appendingPathComponent("gguf/tiny_llama.gguf").path)
        let q = try CausalLM(config: try g.modelConfig(), reader: g, backend: backend, keepBlocks: true)
        let f = try CausalLM(config: try g.modelConfig(), reader: g, backend: backend)
        XCTAssertTrue(q.weights.hasBlocks)
        let batch = TokenBatch.leftPadded([[1, 5, 9, 20, 7], [3, 4, 11]], padId: 0)
        for peft in [PEFTConfig.lora(LoRAOptions(rank: 2, alpha: 4, targets: ["q", "v", "down"])), .prefix(PrefixOptions(tokens: 2)),
                     .prompt(PromptOptions(tokens: 3))] {
            let (aq, af) = (try peft.make(model: q), try peft.make(model: f))
            for (i, (eq, ef)) in zip(aq.set.entries, af.set.entries).enumerated() {
                backend.perturb(eq.tensor, seed: 3, tensorId: UInt32(i), stream: 0, scale: 0.2)
                backend.perturb(ef.tensor, seed: 3, tensorId: UInt32(i), stream: 0, scale: 0.2)
            }
            (q.hook, f.hook) = (aq, af)
            XCTAssertEqual(backend.toHost(try q.allLogits(batch)), backend.toHost(try f.allLogits(batch)), peft.name)
            let blocks = q.weights.names.map { name in
                [UInt8](UnsafeRawBufferPointer(start: q.weights[name].pointer, count: q.weights[name].bytes))
            }
            let before = aq.set.entries.map { backend.toHost($0.tensor) }
            let mezo = try OptimizerConfig.mezo(MeZOOptions(eps: 1e-2)).make(set: aq.set, backend: backend)
            _ = try mezo.step(StepContext(step: 0, runSeed: 1, lr: 1e-2, loss: { try languageModelLoss(q, batch) }))
            XCTAssertNotEqual(aq.set.entries.map { backend.toHost($0.tensor) }, before, peft.name)
            XCTAssertEqual(q.weights.names.map { [UInt8](UnsafeRawBufferPointer(start: q.weights[$0].pointer, count: q.weights[$0].bytes)) },
                           blocks, "\(peft.name): the blocks moved")
        }
        XCTAssertThrowsError(try OptimizerConfig.mezo(MeZOOptions()).make(model: q)) { XCTAssertTrue("\($0)".contains("--peft"), "\($0)") }
    }
}

extension PEFTTests {
    /// Bad adapter directories are refused with the file and field named: no config, an unknown
    /// method, an adapter made for another model (shapes), a tensor the model has no place for.
    func testBadAdapterDirectoriesAreRefused() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lm = try tinyModel()
        XCTAssertThrowsError(try PEFTExport.load(dir, model: lm)) { XCTAssertTrue("\($0)".contains("adapter_config.json"), "\($0)") }

        let lora = try PEFTConfig.lora(LoRAOptions(rank: 2, targets: ["q", "v"])).make(model: lm)
        try PEFTExport.write(lora, model: lm, baseModel: "tiny", to: dir)
        let configURL = dir.appendingPathComponent(PEFTExport.configFile)
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config.removeValue(forKey: "zotune")   // read as a foreign PEFT adapter
        config["peft_type"] = "IA3"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        XCTAssertThrowsError(try PEFTExport.load(dir, model: lm)) { XCTAssertTrue("\($0)".contains("peft_type") && "\($0)".contains("IA3"), "\($0)") }
        config["peft_type"] = "LORA"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        // As a foreign LoRA it loads (targets from its tensors), with the same logits.
        let batch = TokenBatch.leftPadded([[1, 5, 9]], padId: 0)
        for (i, e) in lora.set.entries.enumerated() { backend.perturb(e.tensor, seed: 2, tensorId: UInt32(i), stream: 0, scale: 0.3) }
        try PEFTExport.write(lora, model: lm, baseModel: "tiny", to: dir)
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        lm.hook = lora
        let want = backend.toHost(try lm.allLogits(batch))
        let other = try tinyModel()
        other.hook = try PEFTExport.load(dir, model: other)
        XCTAssertEqual(backend.toHost(try other.allLogits(batch)), want)
        // Onto another architecture: the layers' shapes (or names) do not fit.
        XCTAssertThrowsError(try PEFTExport.load(dir, model: try tinyModel("opt"))) {
            XCTAssertTrue("\($0)".contains("adapter_model.safetensors") && "\($0)".contains("has no layer"), "\($0)")
        }
    }
}
