// Text ↔ token ids. Implementations must give the same ids as Hugging Face `tokenizers` for the
// same tokenizer.json (or the same GGUF vocabulary), since the model was trained on those ids.

/// A tokenizer: text to token ids and back.
public protocol Tokenizer: Sendable {
    /// Token ids for `text`. With `addSpecialTokens`, the post-processor's tokens (e.g. a BOS) are added.
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int32]
    /// The text for `ids`; unknown ids are dropped. With `skipSpecialTokens`, special tokens are left out.
    func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String
    /// The vocabulary entry for `id` as stored (e.g. "Ġthe", "▁the", "<0x0A>"), or nil.
    func token(_ id: Int32) -> String?
    /// The id of a vocabulary entry or added token, spelled as stored, or nil.
    func id(_ token: String) -> Int32?
    /// One past the largest id.
    var vocabSize: Int { get }
    var bosId: Int32? { get }
    var eosId: Int32? { get }
    var padId: Int32? { get }
    var unknownId: Int32? { get }
}

extension Tokenizer {
    /// Encodes with the special tokens (as `tokenizers` does by default).
    public func encode(_ text: String) -> [Int32] { encode(text, addSpecialTokens: true) }
    /// Decodes without the special tokens (as `tokenizers` does by default).
    public func decode(_ ids: [Int32]) -> String { decode(ids, skipSpecialTokens: true) }
    public var padId: Int32? { nil }
    public var unknownId: Int32? { nil }
}
