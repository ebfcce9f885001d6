import Foundation
import ZOTuneModels

extension HFExport {
    /// tokenizer.json, tokenizer_config.json (and special_tokens_map.json) from a GGUF's tokenizer metadata.
    static func writeGGUFTokenizer(file: ModelFile, to dir: URL) throws {
        guard let gguf = file.reader as? GGUFFile else { return }
        let files = try huggingFaceTokenizerFiles(from: gguf)
        try AtomicFile.write(files.tokenizerJSON, to: dir.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(files.tokenizerConfigJSON, to: dir.appendingPathComponent("tokenizer_config.json"))
        if let special = files.specialTokensMapJSON {
            try AtomicFile.write(special, to: dir.appendingPathComponent("special_tokens_map.json"))
        }
    }
}
