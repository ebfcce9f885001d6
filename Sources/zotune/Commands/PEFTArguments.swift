import ArgumentParser
import ZOTuneModels
import ZOTuneTraining

/// `--peft` and the options of each adapter; an option of another adapter is an error.
struct PEFTArguments: ParsableArguments {
    @Option(help: "Train an adapter over the frozen base instead of every weight: none, lora, prefix or prompt.")
    var peft = "none"
    @Option(name: .customLong("lora-rank"), help: "LoRA rank r (default 8).")
    var loraRank: Int?
    @Option(name: .customLong("lora-alpha"), help: "LoRA α; the update is scaled by α/r (default 16).")
    var loraAlpha: Float?
    @Option(name: .customLong("lora-targets"),
            help: "Adapted linear layers, comma-separated roles (q, k, v, o, qkv, gate, up, down), checkpoint names (fc1, c_attn, …), or all (default q,v).")
    var loraTargets: String?
    @Option(name: .customLong("prefix-tokens"), help: "Prefix tuning: P key/value vectors per layer (default 5).")
    var prefixTokens: Int?
    @Option(name: .customLong("prompt-tokens"), help: "Prompt tuning: P soft tokens before BOS (default 10).")
    var promptTokens: Int?
    @Option(name: .customLong("peft-seed"), help: "Seed of the adapter's initialisation (LoRA's A; the prefix's or prompt's token ids).")
    var peftSeed: UInt64 = 0

    func config() throws -> PEFTConfig? {
        let given: [(String, Bool, String)] = [
            ("--lora-rank", loraRank != nil, "lora"), ("--lora-alpha", loraAlpha != nil, "lora"), ("--lora-targets", loraTargets != nil, "lora"),
            ("--prefix-tokens", prefixTokens != nil, "prefix"), ("--prompt-tokens", promptTokens != nil, "prompt"),
        ]
        for (name, set, owner) in given where set && owner != peft {
            throw ValidationError("\(name) is an option of --peft \(owner), not \(peft)")
        }
        switch peft {
        case "none":
            if peftSeed != 0 { throw ValidationError("--peft-seed needs --peft lora, prefix or prompt") }
            return nil
        case "lora":
            var o = LoRAOptions(seed: peftSeed)
            if let r = loraRank { o.rank = r }
            if let a = loraAlpha { o.alpha = a }
            if let t = loraTargets { o.targets = t.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            guard o.rank >= 1 else { throw ValidationError("--lora-rank must be at least 1") }
            guard o.alpha > 0 && o.alpha.isFinite else { throw ValidationError("--lora-alpha must be positive") }
            return .lora(o)
        case "prefix":
            let o = PrefixOptions(tokens: prefixTokens ?? 5, seed: peftSeed)
            guard o.tokens >= 1 else { throw ValidationError("--prefix-tokens must be at least 1") }
            return .prefix(o)
        case "prompt":
            let o = PromptOptions(tokens: promptTokens ?? 10, seed: peftSeed)
            guard o.tokens >= 1 else { throw ValidationError("--prompt-tokens must be at least 1") }
            return .prompt(o)
        default:
            throw ValidationError("--peft must be none, lora, prefix or prompt")
        }
    }
}
