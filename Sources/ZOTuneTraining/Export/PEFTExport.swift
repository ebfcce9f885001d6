import Foundation
import ZOTuneBackend
import ZOTuneModels

/// Adapters in Hugging Face PEFT's format: a directory with adapter_config.json and
/// adapter_model.safetensors (PEFT's tensor names, f32), which `peft.PeftModel.from_pretrained`
/// loads onto the base model; and back (`zotune merge`, `eval --adapter`).
public enum PEFTExport {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    public static func write(_ adapter: any PEFTAdapter, model: CausalLM, baseModel: String, to dir: URL,
                             metadata: [String: String] = [:]) throws {
        try FileError.createDirectory(dir)
        var config = adapter.peftConfig(model: model)
        config["base_model_name_or_path"] = baseModel
        config["zotune"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(adapter.config))
        let tensors = adapter.set.entries.map { ($0.name, $0.tensor) }
        try AtomicFile.write(try HFExport.safetensors(tensors, backend: model.backend, metadata: metadata.merging(["format": "pt"]) { a, _ in a }),
                             to: dir.appendingPathComponent(weightsFile))
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted]),
                             to: dir.appendingPathComponent(configFile))
    }

    /// The adapter a PEFT directory describes, built on `model` (not installed) with its saved
    /// tensors. LoRA (any PEFT LoRA without DoRA/rsLoRA/per-layer ranks on layers this model
    /// has), prefix and prompt tuning.
    public static func load(_ dir: URL, model: CausalLM) throws -> any PEFTAdapter {
        let configURL = dir.appendingPathComponent(configFile), weightsURL = dir.appendingPathComponent(weightsFile)
        let path = configURL.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(file: path, field: "file", "missing (an adapter directory holds \(configFile) and \(weightsFile))")
        }
        guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw ModelError(file: path, field: "file", "not a JSON object") }
        let file = try SafetensorsFile(url: weightsURL)
        func int(_ k: String) throws -> Int {
            guard let v = (j[k] as? NSNumber)?.intValue else { throw ModelError(file: path, field: k, "missing or not a number") }
            return v
        }
        // Our own export records its exact options; a foreign adapter is described by PEFT's fields.
        var config: PEFTConfig
        if let own = j["zotune"], let d = try? JSONSerialization.data(withJSONObject: own), let c = try? JSONDecoder().decode(PEFTConfig.self, from: d) {
            config = c
        } else {
            switch j["peft_type"] as? String {
            case "LORA":
                for k in ["use_dora", "use_rslora"] where (j[k] as? Bool) == true {
                    throw ModelError(file: path, field: k, "true is not supported (plain LoRA only)")
                }
                for k in ["rank_pattern", "alpha_pattern"] where !((j[k] as? [String: Any])?.isEmpty ?? true) {
                    throw ModelError(file: path, field: k, "per-layer ranks or alphas are not supported")
                }
                let layers = file.tensors.keys.filter { $0.hasSuffix(".lora_A.weight") }.map { name -> String in
                    var s = String(name.dropLast(".lora_A.weight".count))
                    if s.hasPrefix("base_model.model.") { s.removeFirst("base_model.model.".count) }
                    return s
                }.sorted()
                guard !layers.isEmpty else { throw ModelError(file: weightsURL.path, field: "tensors", "no lora_A weights") }
                if let missing = layers.first(where: { model.weights.optional($0 + ".weight") == nil }) {
                    throw ModelError(file: weightsURL.path, field: "base_model.model.\(missing).lora_A.weight",
                                     "this \(model.config.architecture.rawValue) model has no layer \(missing)")
                }
                let rank = try int("r")
                let alpha = (j["lora_alpha"] as? NSNumber)?.floatValue ?? Float(rank)
                config = .lora(LoRAOptions(rank: rank, alpha: alpha, targets: layers))
            case "PREFIX_TUNING":
                if (j["prefix_projection"] as? Bool) == true { throw ModelError(file: path, field: "prefix_projection", "true is not supported") }
                config = .prefix(PrefixOptions(tokens: try int("num_virtual_tokens")))
            case "PROMPT_TUNING":
                config = .prompt(PromptOptions(tokens: try int("num_virtual_tokens")))
            case let t:
                throw ModelError(file: path, field: "peft_type", "\(t ?? "missing"): this build reads LORA, PREFIX_TUNING and PROMPT_TUNING")
            }
        }
        let adapter = try config.make(model: model)
        for e in adapter.set.entries {
            guard let entry = file.tensors[e.name] else { throw ModelError(file: weightsURL.path, field: e.name, "missing tensor") }
            guard entry.shape == e.tensor.shape else {
                throw ModelError(file: weightsURL.path, field: e.name, "shape \(entry.shape), but \(config.name) on this model needs \(e.tensor.shape)")
            }
            var staging = [UInt8](repeating: 0, count: e.tensor.bytes)
            try staging.withUnsafeMutableBytes { try file.read(e.name, into: $0, as: .f32) }
            staging.withUnsafeBytes { model.backend.copy(e.tensor, fromHost: $0) }
        }
        let used = Set(adapter.set.entries.map(\.name))
        if let extra = file.tensors.keys.sorted().first(where: { !used.contains($0) }) {
            throw ModelError(file: weightsURL.path, field: extra, "no layer of this model takes this tensor")
        }
        return adapter
    }
}
