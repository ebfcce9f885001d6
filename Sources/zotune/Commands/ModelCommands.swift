import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// Options of every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model: a .gguf file, or a Hugging Face directory (config.json + safetensors + tokenizer.json).")
    var model: String

    @Option(help: ArgumentHelp("Weight storage: auto, f32, bf16, f16 (math is f32), or gguf.",
                               discussion: "auto: on CUDA a bf16/f16 checkpoint stays in its dtype (tensor-core GEMMs under --precision auto), anything else is f32; on the CPU f32. gguf keeps a GGUF file's quantized matrices (Q4_0…Q6_K) as stored, dequantized one at a time before each GEMM; other tensors are f32. Such a base is frozen: train adapters over it (--peft)."))
    var dtype: String = "auto"

    @Option(help: ArgumentHelp("GEMM precision: auto, f32, mixed or tf32.",
                               discussion: "mixed: bf16/f16 weights are tensor-core operands as stored (activations rounded to their type, f32 accumulation); f32: every product in f32 (low-precision weights widened into a scratch copy first); tf32: mixed, and f32 weights on TF32 tensor cores (CUDA only). auto: mixed on CUDA, f32 on the CPU (where mixed is an exact emulation, slower). See docs/cuda.md."))
    var precision: String = "auto"

    @Option(name: .customLong("sliding-window"),
            help: ArgumentHelp("Attention window in keys (0: none) for a file that cannot state it.",
                               discussion: Self.slidingWindowDiscussion))
    var slidingWindow: Int?

    static let slidingWindowDiscussion = "llama.cpp's converter drops the sliding window of Mistral and Qwen2 GGUF files: N makes every layer attend to its last N keys, as the Hugging Face config's sliding_window does. Applies to llama, mistral, qwen2, qwen3 and phi3 checkpoints whose file states no window; a file that states one is refused any other value. See docs/architecture.md."

    func open() throws -> ModelFile { try ModelFile.open(model).overridingSlidingWindow(slidingWindow) }

    /// Opens the checkpoint and loads its weights onto `backend` with the chosen storage.
    func load(on backend: any Backend) throws -> (file: ModelFile, model: CausalLM) {
        let file = try open()
        return (file, try load(file, on: backend))
    }

    func load(_ file: ModelFile, on backend: any Backend) throws -> CausalLM {
        let s = try storage(file, device: backend.device)
        return try file.load(on: backend, dtype: s.dtype, keepBlocks: s.keepBlocks, precision: s.precision)
    }

    /// `--dtype gguf`: quantized matrices stay in their blocks.
    var keepBlocks: Bool { dtype == "gguf" }

    /// `--dtype` and `--precision` resolved for this checkpoint on this device (auto included).
    func storage(_ file: ModelFile, device: DeviceKind) throws -> WeightStorage {
        try WeightStorage.resolve(dtype: dtype, precision: precision, checkpoint: file.storedFloatDType, device: device)
    }
}

/// The batch of random tokens that `bench forward`, `bench step` and `memory` run on.
struct BatchShapeOptions: ParsableArguments {
    @Option(name: .customLong("batch-size"), help: "Sequences per batch.")
    var batchSize = 16

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence.")
    var seqLen = 64

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        guard seqLen >= 1 else { throw ValidationError("--seq-len must be at least 1 (got \(seqLen))") }
        // Positions are 32-bit in the kernels (rope, embeddings).
        guard seqLen <= Int(Int32.max) else { throw ValidationError("--seq-len must be at most \(Int32.max) (got \(seqLen))") }
    }

    /// The random batch; refused when one f32 activation of it (tokens × hidden) would not fit the
    /// machine's memory, a lower bound on what a forward needs, so the command fails at once.
    func tokens(model config: ModelConfig) throws -> TokenBatch {
        let (tokens, o1) = batchSize.multipliedReportingOverflow(by: seqLen)
        let (bytes, o2) = tokens.multipliedReportingOverflow(by: 4 * config.hiddenSize)
        if o1 || o2 || UInt64(bytes) > ProcessInfo.processInfo.physicalMemory {
            throw ValidationError("--batch-size \(batchSize) × --seq-len \(seqLen): one activation of \(o1 ? "so many" : String(tokens)) tokens " +
                                  "× hidden \(config.hiddenSize) exceeds this machine's \(formatBytes(Int(ProcessInfo.processInfo.physicalMemory))) of memory")
        }
        return randomTokenBatch(batch: batchSize, length: seqLen, vocab: config.vocabSize)
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt (greedy by default).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions

    @Option(help: "The prompt text.")
    var prompt: String

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate at most.")
    var maxTokens = 32

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.")
    var topP: Float = 1

    @Option(help: "Sampling seed.")
    var seed: UInt64 = 0

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1 (got \(maxTokens))") }
        guard temperature.isFinite && temperature >= 0 else { throw ValidationError("--temperature must be 0 (greedy) or positive (got \(temperature))") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1] (got \(topP))") }
    }

    func run() throws {
        let file = try model.open()
        let tokenizer = try file.requireTokenizer()
        let lm = try model.load(file, on: try device.backend())
        let ids = tokenizer.encode(prompt, addSpecialTokens: true)
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        // The KV cache holds prompt + new tokens from the start; past the model's positions a
        // learned position table has no rows, and RoPE models were not trained there.
        guard maxTokens <= lm.config.maxPositions - ids.count else {
            throw ValidationError("--max-tokens \(maxTokens): the prompt's \(ids.count) tokens and \(maxTokens) more exceed the model's \(lm.config.maxPositions) positions")
        }
        writeStdout(prompt)
        // The new tokens decoded after the prompt's: a SentencePiece decoder drops the leading space
        // of a text's first token, which the continuation's first token is not.
        let promptText = tokenizer.decode(ids, skipSpecialTokens: true)
        func continuation(_ new: [Int32]) -> String {
            let all = tokenizer.decode(ids + new, skipSpecialTokens: true)
            return all.hasPrefix(promptText) ? String(all.dropFirst(promptText.count)) : tokenizer.decode(new, skipSpecialTokens: true)
        }
        var generated: [Int32] = []
        var printed = ""
        let stop = Set([tokenizer.eosId].compactMap { $0 })
        _ = try lm.generate([ids], maxNewTokens: maxTokens,
                            sampling: SamplingOptions(temperature: temperature, topP: topP, seed: seed),
                            stopIds: stop, padId: tokenizer.padId ?? 0) { next in
            guard !stop.contains(next[0]) else { return }
            generated.append(next[0])
            // Decode the whole continuation and print what is new: multi-byte characters can span tokens.
            let text = continuation(generated)
            if text.hasPrefix(printed), !text.hasSuffix("\u{FFFD}") {
                writeStdout(String(text.dropFirst(printed.count)))
                printed = text
            }
        }
        let text = continuation(generated)
        if text.count > printed.count, text.hasPrefix(printed) { writeStdout(String(text.dropFirst(printed.count))) }
        writeStdout("\n")
    }
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The next-token distribution after a text: top-k tokens with log-probs.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions

    @Option(help: "The text.")
    var text: String

    @Option(help: "How many tokens to list.")
    var top = 10

    @Flag(help: "Print one JSON line.")
    var json = false

    func validate() throws {
        guard top >= 1 else { throw ValidationError("--top must be at least 1 (got \(top))") }
    }

    func run() throws {
        let file = try model.open()
        let tokenizer = try file.requireTokenizer()
        let lm = try model.load(file, on: try device.backend(quiet: json))
        let ids = tokenizer.encode(text, addSpecialTokens: true)
        guard !ids.isEmpty else { throw ValidationError("the text encodes to no tokens") }
        let logits = lm.backend.toHost(try lm.lastLogits(.leftPadded([ids], padId: tokenizer.padId ?? 0)))
        let m = logits.max()!
        let lse = Double(m) + log(logits.reduce(0.0) { $0 + exp(Double($1 - m)) })
        let best = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(top)
        let entries = best.map { (id: $0, token: tokenizer.decode([Int32($0)], skipSpecialTokens: false), logprob: Double(logits[$0]) - lse) }
        if json {
            let top = entries.map { e -> [String: Any] in ["id": e.id, "token": e.token, "logprob": (e.logprob * 1e4).rounded() / 1e4] }
            let object: [String: Any] = ["ids": ids.map(Int.init), "top": top]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("ids: \(ids)")
            for e in entries { print(String(format: "%8d  %9.4f  ", e.id, e.logprob) + e.token.debugDescription) }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Architecture, parameter count, dtypes and bytes of a checkpoint.")

    @Argument(help: "A .gguf file or a Hugging Face checkpoint directory.")
    var path: String

    func run() throws {
        let file = try ModelFile.open(path)
        let c = file.config
        print("\(path) (\(file.format.rawValue))")
        print("architecture   \(c.architecture.rawValue)")
        print("parameters     \(file.parameterCount) (\(String(format: "%.1f", Double(file.parameterCount) / 1e6))M)")
        print("layers \(c.numLayers), hidden \(c.hiddenSize), heads \(c.numHeads) (kv \(c.numKVHeads)), head dim \(c.headDim), mlp \(c.intermediateSize), vocab \(c.vocabSize), positions \(c.maxPositions)")
        print("tied embeddings \(c.tieWordEmbeddings), norm eps \(c.normEps)" + (!c.architecture.family.hasLearnedPositions ? ", rope theta \(c.ropeTheta)" : ""))
        var attention: [String] = []
        if c.rotaryDim != c.headDim { attention.append("rotary dims \(c.rotaryDim) of \(c.headDim)") }
        switch c.ropeScaling {
        case .linear(let f)?: attention.append("rope scaling linear ×\(f)")
        case .llama3(let f, _, _, let orig)?: attention.append("rope scaling llama3 ×\(f) from \(orig)")
        case .longrope(_, _, let orig, let a)?: attention.append("rope scaling longrope (long factors past \(orig) positions, attention factor \(a))")
        case nil: break
        }
        if let w = c.slidingWindow {
            let sliding = (0..<c.numLayers).filter { c.window(layer: $0) > 0 }.count
            attention.append("sliding window \(w) on \(sliding) of \(c.numLayers) layers")
        }
        if !attention.isEmpty { print("attention      " + attention.joined(separator: ", ")) }
        var byType: [StoredType: (tensors: Int, elements: Int)] = [:]
        for t in file.reader.tensors.values { byType[t.type, default: (0, 0)].tensors += 1; byType[t.type, default: (0, 0)].elements += t.count }
        for (type, n) in byType.sorted(by: { $0.value.elements > $1.value.elements }) {
            print("  \(type.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)) \(n.tensors) tensors, \(n.elements) elements")
        }
        // A directory's own size is its inode's (4096): count its weight files instead.
        let files = weightFiles(path)
        let bytes = files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
        print("file bytes     \(bytes) (\(formatBytes(bytes))" + (files.count == 1 && files[0] == path ? ")" : " in \(files.count) .safetensors files)"))
        print("f32 in memory  \(formatBytes(4 * file.parameterCount))")
        if let t = file.tokenizer { print("tokenizer      \(t.vocabSize) tokens, bos \(t.bosId.map(String.init) ?? "-"), eos \(t.eosId.map(String.init) ?? "-")") }
    }
}

/// The files holding a checkpoint's weights: the file itself, or a directory's .safetensors files.
func weightFiles(_ path: String) -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else { return [path] }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.filter { $0.hasSuffix(".safetensors") }.sorted().map { (path as NSString).appendingPathComponent($0) }
}

/// Unbuffered write to stdout, for streaming generated text.
func writeStdout(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}
